//! `GET /sdk/python/booboo-sdk-VERSION.tar.gz`: the Python SDK of this
//! server's own source tree, packed into an sdist by `build.rs`, so the setup
//! page's `pip install` line always installs the SDK this server was built
//! with. Public: the SDK is open code; the DSN is what is secret.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The SDK version packed into this binary (from `sdk/python/pyproject.toml`).
pub const VERSION: &str = env!("BOOBOO_SDK_VERSION");

const SDIST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/booboo-sdk.tar.gz"));

/// The file name the setup page links to.
pub fn file_name() -> String {
    format!("booboo-sdk-{VERSION}.tar.gz")
}

pub async fn serve(Path(file): Path<String>) -> Response {
    if file != file_name() {
        let message = format!("no such SDK file: this server offers {} (the SDK of its own version)", file_name());
        return (StatusCode::NOT_FOUND, message).into_response();
    }
    let mut response = SDIST.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file_name())) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    // The name carries the version, so a cached copy is never stale.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_sdist_holds_the_package_and_its_metadata_under_one_versioned_folder() {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(SDIST));
        let mut names = Vec::new();
        let mut pkg_info = String::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name.ends_with("/PKG-INFO") {
                entry.read_to_string(&mut pkg_info).unwrap();
            }
            names.push(name);
        }
        let root = format!("booboo-sdk-{VERSION}/");
        assert!(names.iter().all(|n| n.starts_with(&root)), "{names:?}");
        for wanted in ["pyproject.toml", "PKG-INFO", "src/booboo/__init__.py", "src/booboo/integrations/django.py"] {
            assert!(names.contains(&format!("{root}{wanted}")), "{wanted} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("__pycache__") || n.ends_with(".pyc")), "{names:?}");
        assert!(pkg_info.contains(&format!("Version: {VERSION}\n")), "{pkg_info}");
        let sdk_version = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python/src/booboo/_client.py"),
        )
        .unwrap();
        assert!(
            sdk_version.contains(&format!("SDK_VERSION = \"{VERSION}\"")),
            "pyproject's version and the SDK's SDK_VERSION differ"
        );
    }
}

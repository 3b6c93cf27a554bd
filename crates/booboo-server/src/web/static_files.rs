//! `GET /static/…`: the hand-written CSS, JavaScript and icon. Read from
//! `static/` in debug builds, embedded in release builds.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str)] = &[
    ("booboo.css", "text/css; charset=utf-8"),
    ("booboo.js", "text/javascript; charset=utf-8"),
    ("favicon.svg", "image/svg+xml"),
];

#[cfg(not(debug_assertions))]
fn contents(name: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    let bytes: &'static [u8] = match name {
        "booboo.css" => include_bytes!("../../static/booboo.css"),
        "booboo.js" => include_bytes!("../../static/booboo.js"),
        "favicon.svg" => include_bytes!("../../static/favicon.svg"),
        _ => return None,
    };
    Some(bytes.into())
}

#[cfg(debug_assertions)]
fn contents(name: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static").join(name);
    std::fs::read(path).ok().map(Into::into)
}

pub async fn serve(Path(file): Path<String>) -> Response {
    let Some((name, content_type)) = FILES.iter().find(|(name, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let Some(body) = contents(name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut response = body.into_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Pages link these with `?v=VERSION`, so a new release is fetched anew.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_static_file_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
        let mut files: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        let mut listed: Vec<String> = super::FILES.iter().map(|(n, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(files, listed);
    }
}

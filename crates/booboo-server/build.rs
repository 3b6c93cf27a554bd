//! Packs the Python SDK in `sdk/python` into an sdist (`booboo-sdk-VERSION.tar.gz`)
//! that the binary serves at `/sdk/python/…`, so a server always offers the
//! SDK of its own source tree. The archive is reproducible: fixed times,
//! owners and modes, files in sorted order.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// 2024-01-01: any fixed time after 1980 (wheels built from the sdist are zip files).
const MTIME: u64 = 1_704_067_200;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let sdk = manifest.join("../../sdk/python");
    println!("cargo:rerun-if-changed={}", sdk.join("pyproject.toml").display());
    println!("cargo:rerun-if-changed={}", sdk.join("README.md").display());
    println!("cargo:rerun-if-changed={}", sdk.join("src").display());

    let pyproject = fs::read_to_string(sdk.join("pyproject.toml")).expect("sdk/python/pyproject.toml is readable");
    let version = project_field(&pyproject, "version").expect("sdk/python/pyproject.toml names a version");
    let summary = project_field(&pyproject, "description").unwrap_or_default();
    let readme = fs::read_to_string(sdk.join("README.md")).unwrap_or_default();

    let root = format!("booboo-sdk-{version}");
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("pyproject.toml".into(), pyproject.clone().into_bytes()),
        ("README.md".into(), readme.clone().into_bytes()),
        ("PKG-INFO".into(), pkg_info(&version, &summary, &readme).into_bytes()),
    ];
    collect(&sdk, &sdk.join("src"), &mut files);
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("booboo-sdk.tar.gz");
    let gz = flate2::GzBuilder::new()
        .mtime(MTIME as u32)
        .write(fs::File::create(&out).expect("OUT_DIR is writable"), flate2::Compression::best());
    let mut archive = tar::Builder::new(gz);
    archive.mode(tar::HeaderMode::Deterministic);
    for (name, bytes) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        archive.append_data(&mut header, format!("{root}/{name}"), bytes.as_slice()).expect("the sdist is writable");
    }
    archive.into_inner().and_then(|gz| gz.finish()).and_then(|mut f| f.flush()).expect("the sdist is written");
    println!("cargo:rustc-env=BOOBOO_SDK_VERSION={version}");
}

/// `key = "value"` in pyproject's `[project]` table.
fn project_field(pyproject: &str, key: &str) -> Option<String> {
    let mut in_project = false;
    for line in pyproject.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_project = line == "[project]";
            continue;
        }
        if !in_project {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == key {
                return Some(v.trim().trim_matches('"').to_string());
            }
        }
    }
    None
}

fn pkg_info(version: &str, summary: &str, readme: &str) -> String {
    format!(
        "Metadata-Version: 2.1\nName: booboo-sdk\nVersion: {version}\nSummary: {summary}\nLicense: MIT\n\
         Requires-Python: >=3.8\nDescription-Content-Type: text/markdown\n\n{readme}"
    )
}

/// Every file under `dir` except caches and compiled files, named relative to `base`.
fn collect(base: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> =
        fs::read_dir(dir).expect("sdk/python/src is readable").map(|e| e.expect("a directory entry").path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name == "__pycache__" || name.ends_with(".pyc") || name.ends_with(".egg-info") || name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(base, &path, files);
        } else {
            let relative = path.strip_prefix(base).expect("under the SDK").to_string_lossy().replace('\\', "/");
            files.push((relative, fs::read(&path).expect("an SDK file is readable")));
        }
    }
}

//! ARCHITECTURE.md must stay true: every path it names exists.

use std::path::Path;

#[test]
fn every_path_architecture_md_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut checked = 0;
    for (i, piece) in text.split('`').enumerate() {
        // Odd pieces are inside backticks; paths start at the repository root.
        let looks_like_path = i % 2 == 1
            && !piece.contains(' ')
            && ["crates/", "tests/", "sdk/", "scripts/", ".ci/", "docs/", "fuzz/"]
                .iter()
                .any(|top| piece.starts_with(top));
        if looks_like_path {
            let path = root.join(piece);
            assert!(path.exists(), "ARCHITECTURE.md names `{piece}`, which does not exist");
            checked += 1;
        }
    }
    assert!(checked > 10, "expected ARCHITECTURE.md to name the code's paths, found {checked}");
}

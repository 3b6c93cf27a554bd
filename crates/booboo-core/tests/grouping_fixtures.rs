//! Runs every grouping fixture: events with the same `group` letter must
//! share a fingerprint, different letters must not, and `components`, where a
//! case gives them, must match exactly.

use booboo_core::booboo_payload::{self, Payload};
use std::collections::BTreeMap;
use std::path::Path;

#[test]
fn grouping_fixtures_hold() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grouping");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 6, "expected the grouping fixtures in {}", dir.display());
    for file in files {
        let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let mut by_group: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut seen_fingerprints: BTreeMap<String, String> = BTreeMap::new();
        for case in fixture["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let group = case["group"].as_str().unwrap().to_string();
            let body = serde_json::to_vec(&case["event"]).unwrap();
            let now = time::OffsetDateTime::UNIX_EPOCH;
            let Payload::Event(event) = booboo_payload::parse(&body, now, "00000000000000000000000000000000").unwrap()
            else {
                panic!("{}: {name} is not an event", file.display())
            };
            let processed = booboo_core::process(*event);
            if let Some(expected) = case.get("components") {
                let expected: Vec<String> = serde_json::from_value(expected.clone()).unwrap();
                assert_eq!(processed.fingerprint.components, expected, "{}: {name}", file.display());
            }
            let fp = processed.fingerprint.fingerprint.clone();
            match by_group.get(&group) {
                Some((other_fp, other_name)) => {
                    assert_eq!(&fp, other_fp, "{}: `{name}` should group with `{other_name}`", file.display())
                }
                None => {
                    if let Some(other_group) = seen_fingerprints.get(&fp) {
                        panic!("{}: `{name}` (group {group}) collides with group {other_group}", file.display());
                    }
                    by_group.insert(group.clone(), (fp.clone(), name.to_string()));
                    seen_fingerprints.insert(fp, group);
                }
            }
        }
    }
}

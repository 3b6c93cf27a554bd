//! Runs every grouping fixture: events (booboo bodies or Sentry payloads)
//! with the same `group` letter must
//! share a fingerprint, different letters must not, and `components`, where a
//! case gives them, must match exactly.

use booboo_core::booboo_payload::{self, Payload};
use booboo_core::sentry_event::{self, Arrival};
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
            let now = time::OffsetDateTime::UNIX_EPOCH;
            let id = "00000000000000000000000000000000";
            // A case is a booboo protocol body (`event`) or a Sentry event
            // payload (`sentry_event`); both go through the same grouping.
            let event = if let Some(sentry) = case.get("sentry_event") {
                let arrival = Arrival { received_at: now, envelope_event_id: None, fallback_event_id: id };
                sentry_event::parse(&serde_json::to_vec(sentry).unwrap(), arrival)
                    .unwrap_or_else(|e| panic!("{}: {name}: {e}", file.display()))
            } else {
                let body = serde_json::to_vec(&case["event"]).unwrap();
                let Payload::Event(event) = booboo_payload::parse(&body, now, id).unwrap() else {
                    panic!("{}: {name} is not an event", file.display())
                };
                *event
            };
            let processed = booboo_core::process(event);
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

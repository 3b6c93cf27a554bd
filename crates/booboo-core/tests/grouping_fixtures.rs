//! Runs every grouping fixture: events (booboo bodies or Sentry payloads)
//! with the same `group` letter must
//! share a fingerprint, different letters must not, and `components`, where a
//! case gives them, must match exactly. `culprit`, where a case gives one,
//! must match too.
//!
//! `tests/fixtures/pinned_fingerprints.json` holds the fingerprint of every
//! case as it was when it was pinned: a fingerprint that moves regroups every
//! installation's issues, so a change there must be deliberate. Regenerate
//! it with `BOOBOO_PIN_FINGERPRINTS=1 cargo test -p booboo-core --test grouping_fixtures`
//! and say in the commit why each moved.

use booboo_core::booboo_payload::{self, Payload};
use booboo_core::sentry_envelope;
use booboo_core::sentry_event::{self, Arrival};
use booboo_core::ProcessedEvent;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct Case {
    file: PathBuf,
    name: String,
    group: String,
    fixture: serde_json::Value,
    processed: ProcessedEvent,
}

fn cases(file: &Path) -> Vec<Case> {
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut out = Vec::new();
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap().to_string();
        let group = case["group"].as_str().unwrap().to_string();
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let id = "00000000000000000000000000000000";
        // A case is a booboo protocol body (`event`), a Sentry event
        // payload (`sentry_event`) or a captured envelope (`envelope`, a path
        // under `tests/fixtures/`); all go through the same grouping.
        let event = if let Some(envelope) = case.get("envelope") {
            envelope_event(envelope.as_str().unwrap())
        } else if let Some(sentry) = case.get("sentry_event") {
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
        out.push(Case { file: file.to_path_buf(), name, group, fixture: case.clone(), processed });
    }
    out
}

/// The event item of a captured envelope, read the way the server reads it.
fn envelope_event(relative: &str) -> booboo_core::Event {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(relative);
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let envelope = sentry_envelope::parse(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let item = envelope.items.iter().find(|i| i.item_type == "event").expect("an event item");
    let envelope_event_id = envelope.event_id();
    let arrival = Arrival {
        received_at: time::OffsetDateTime::UNIX_EPOCH,
        envelope_event_id: envelope_event_id.as_deref(),
        fallback_event_id: "00000000000000000000000000000000",
    };
    sentry_event::parse(item.payload, arrival).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grouping");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 6, "expected the grouping fixtures in {}", dir.display());
    files
}

#[test]
fn grouping_fixtures_hold() {
    for file in fixture_files() {
        let mut by_group: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut seen_fingerprints: BTreeMap<String, String> = BTreeMap::new();
        for Case { file, name, group, fixture, processed } in cases(&file) {
            if let Some(expected) = fixture.get("components") {
                let expected: Vec<String> = serde_json::from_value(expected.clone()).unwrap();
                assert_eq!(processed.fingerprint.components, expected, "{}: {name}", file.display());
            }
            if let Some(expected) = fixture.get("culprit") {
                assert_eq!(&processed.culprit, expected, "{}: {name}", file.display());
            }
            if let Some(expected) = fixture.get("title") {
                assert_eq!(&processed.title, expected, "{}: {name}", file.display());
            }
            if std::env::var_os("BOOBOO_SHOW_GROUPING").is_some() {
                println!(
                    "{name}: {} | {} | {:?}",
                    processed.title, processed.culprit, processed.fingerprint.components
                );
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

#[test]
fn pinned_fingerprints_do_not_move() {
    let pinned_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pinned_fingerprints.json");
    let mut now: BTreeMap<String, String> = BTreeMap::new();
    for file in fixture_files() {
        let stem = file.file_name().unwrap().to_string_lossy().to_string();
        for case in cases(&file) {
            now.insert(format!("{stem}: {}", case.name), case.processed.fingerprint.fingerprint);
        }
    }
    if std::env::var_os("BOOBOO_PIN_FINGERPRINTS").is_some() {
        std::fs::write(&pinned_path, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
        return;
    }
    let pinned: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&pinned_path).unwrap()).unwrap();
    let moved: Vec<&String> =
        pinned.iter().filter(|(k, v)| now.get(*k).is_some_and(|n| n != *v)).map(|(k, _)| k).collect();
    assert!(moved.is_empty(), "fingerprints moved (this regroups existing issues): {moved:#?}");
    let unpinned: Vec<&String> = now.keys().filter(|k| !pinned.contains_key(*k)).collect();
    assert!(unpinned.is_empty(), "cases without a pinned fingerprint: {unpinned:#?}");
}

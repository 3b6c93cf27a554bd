//! The Sentry parsers on envelopes shaped like the ones the Python,
//! JavaScript (Node and browser) and Rust SDKs send, and on malformed ones.
//! The fixtures live in `tests/fixtures/sentry/`.

use booboo_core::event::ChainType;
use booboo_core::sentry_envelope::{self, Envelope, EnvelopeError};
use booboo_core::sentry_event::{self, Arrival};
use booboo_core::{Event, Level};
use std::path::Path;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sentry").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn arrival(envelope: &Envelope<'_>) -> (time::OffsetDateTime, Option<String>) {
    (time::OffsetDateTime::from_unix_timestamp(1_769_860_800).unwrap(), envelope.event_id())
}

/// The envelope's event items, read the way the server reads them.
fn events_of(body: &[u8]) -> (Vec<String>, Vec<Event>) {
    let envelope = sentry_envelope::parse(body).unwrap();
    let (received_at, envelope_event_id) = arrival(&envelope);
    let types = envelope.items.iter().map(|i| i.item_type.clone()).collect();
    let events = envelope
        .items
        .iter()
        .filter(|i| i.item_type == "event")
        .map(|i| {
            let arrival = Arrival {
                received_at,
                envelope_event_id: envelope_event_id.as_deref(),
                fallback_event_id: "ffffffffffffffffffffffffffffffff",
            };
            sentry_event::parse(i.payload, arrival).unwrap()
        })
        .collect();
    (types, events)
}

#[test]
fn python_chained_exception() {
    let (types, events) = events_of(&fixture("python_chained_exception.envelope"));
    assert_eq!(types, ["event"]);
    let event = &events[0];
    assert_eq!(event.event_id, "f18c4de6b26849a39113a3d7e766757d");
    assert_eq!(event.timestamp, "2026-01-31T12:00:00.364Z");
    assert_eq!(event.exception_type, "ValueError");
    assert_eq!(event.message, "bad quantity");
    let chain: Vec<_> = event.exceptions.iter().map(|e| e.exception_type.as_str()).collect();
    assert_eq!(chain, ["ValueError", "ZeroDivisionError"]);
    assert_eq!(event.exceptions[0].handled, Some(true));
    let cause_frames = &event.exceptions[1].stacktrace;
    let raised_at = cause_frames.last().unwrap();
    assert_eq!(raised_at.filename, "/srv/shop/app.py");
    assert_eq!(raised_at.module.as_deref(), Some("__main__"));
    assert_eq!(raised_at.function, "checkout");
    assert_eq!(raised_at.lineno, Some(7));
    assert_eq!(raised_at.context_line.as_deref(), Some("    total = price / qty"));
    assert_eq!(raised_at.pre_context, ["def checkout(price, qty):"]);
    assert_eq!(raised_at.vars["qty"], "0");
    assert!(raised_at.in_app);
    assert_eq!(cause_frames[0].vars["cart"]["'sku'"], "'A-1'");
    assert_eq!(event.environment, "staging");
    assert_eq!(event.release, "1.2.3");
    assert_eq!(event.server_name, "web-1");
    assert_eq!(event.platform, "python");
    assert_eq!(event.tags["shop"], "eu");
    assert_eq!(event.user.as_ref().unwrap()["email"], "ada@example.com");
    assert_eq!(event.runtime.as_ref().unwrap().version, "3.11.7");
    assert_eq!(event.sdk.as_ref().unwrap().name, "sentry.python.flask");
    assert_eq!(event.breadcrumbs[0]["message"], "added item");
    assert_eq!(event.contexts["trace"]["trace_id"], "d38e36f70ce14a4e9989a4e37f5baa91");
    assert_eq!(event.extra["extra"]["sys.argv"][0], "app.py");
    assert_eq!(event.extra["modules"]["flask"], "3.1.0");

    // Through the shared tail of the pipeline: secrets and dunders go.
    let processed = booboo_core::process(event.clone());
    let vars = &processed.event.exceptions[1].stacktrace[1].vars;
    assert_eq!(vars["api_token"], "[filtered]");
    // Locals sent as JSON containers stay structured (the dashboard shows a tree).
    let cart = &processed.event.exceptions[1].stacktrace[0].vars["cart"];
    assert_eq!(cart, &serde_json::json!({"'sku'": "'A-1'", "'qty'": "0"}));
    assert!(!processed.event.exceptions[1].stacktrace[0].vars.contains_key("__name__"));
    assert_eq!(processed.title, "ValueError: bad quantity");
    assert_eq!(processed.culprit, "<module> in app.py");
    // Pinned: a Python fingerprint that moves regroups every installation's issues.
    assert_eq!(processed.fingerprint.fingerprint, "263f315a77d189938833811420359d4b");
}

#[test]
fn javascript_node_error_without_lengths() {
    let (types, events) = events_of(&fixture("javascript_node_error.envelope"));
    assert_eq!(types, ["event"]);
    let event = &events[0];
    assert_eq!(event.exception_type, "TypeError");
    assert_eq!(event.timestamp, "2026-01-31T12:00:00.813Z");
    let frames = &event.exceptions[0].stacktrace;
    assert_eq!(frames.len(), 3);
    assert!(!frames[0].in_app);
    let raised_at = frames.last().unwrap();
    assert_eq!((raised_at.function.as_str(), raised_at.lineno, raised_at.colno), ("checkout", Some(7), Some(24)));
    assert_eq!(raised_at.filename, "/srv/shop/app.js");
    assert_eq!(event.breadcrumbs[0]["timestamp"], "2026-01-31T12:00:00.811Z");
    assert_eq!(event.runtime.as_ref().unwrap().name, "node");
    assert_eq!(event.user.as_ref().unwrap()["id"], "u-9");
    assert_eq!(booboo_core::process(event.clone()).culprit, "checkout in app.js");
}

#[test]
fn javascript_browser_error_with_a_cause_and_a_dsn() {
    let body = fixture("javascript_browser_error.envelope");
    let envelope = sentry_envelope::parse(&body).unwrap();
    assert_eq!(envelope.dsn(), Some("https://0123456789abcdef0123456789abcdef@errors.example/42"));
    let (types, events) = events_of(&body);
    assert_eq!(types, ["event", "client_report"]);
    let event = &events[0];
    assert_eq!(event.message, "checkout failed");
    assert_eq!(event.exceptions[0].handled, Some(false));
    assert_eq!(event.exceptions[1].value, "network down");
    assert_eq!(event.exceptions[1].chain_type, Some(ChainType::Cause));
    assert_eq!(event.user.as_ref().unwrap().get("ip_address"), None);
    assert_eq!(event.request.as_ref().unwrap().headers["User-Agent"], "Mozilla/5.0 (X11; Linux x86_64)");
    assert_eq!(event.fingerprint.as_deref(), Some(&["{{ default }}".to_string(), "checkout".to_string()][..]));
    let processed = booboo_core::process(event.clone());
    assert_eq!(processed.event.request.unwrap().url, "https://shop.example/cart?session=abc&page=2");
    assert!(processed.fingerprint.components.contains(&"custom:checkout".to_string()));
    assert!(processed.fingerprint.components.contains(&"type:Error".to_string()));
}

#[test]
fn rust_panic_with_dashed_ids_and_tag_pairs() {
    let (_, events) = events_of(&fixture("rust_panic.envelope"));
    let event = &events[0];
    assert_eq!(event.event_id, "5d9b0e5c21d84d6f9f1b6e8e0c3a2b1f");
    assert_eq!(event.level, Level::Fatal);
    assert_eq!(event.exception_type, "panic");
    assert_eq!(event.tags["attempt"], "3");
    assert_eq!(event.contexts["rust"]["channel"], "stable");
    assert_eq!(booboo_core::process(event.clone()).culprit, "inventory::load in main.rs");
}

#[test]
fn every_other_item_type_is_framed_and_left_alone() {
    let body = fixture("ignored_item_types.envelope");
    let (types, events) = events_of(&body);
    assert!(events.is_empty());
    assert_eq!(
        types,
        [
            "session",
            "sessions",
            "transaction",
            "attachment",
            "check_in",
            "client_report",
            "a_type_from_the_future",
            "attachment"
        ]
    );
    let envelope = sentry_envelope::parse(&body).unwrap();
    assert_eq!(envelope.items[3].payload, b"\x00\x01\n\xff\xfe{\"type\":\"event\"}\n");
    assert_eq!(envelope.items[7].payload, b"");
}

#[test]
fn malformed_envelopes_are_refused_with_a_reason() {
    let err = |name: &str| sentry_envelope::parse(&fixture(name)).unwrap_err();
    assert!(matches!(err("malformed_header_not_json.envelope"), EnvelopeError::InvalidHeader { item: None, .. }));
    assert!(matches!(
        err("malformed_item_header_not_json.envelope"),
        EnvelopeError::InvalidHeader { item: Some(0), .. }
    ));
    assert_eq!(
        err("malformed_length_past_end.envelope"),
        EnvelopeError::LengthPastEnd { item: 0, length: 4000, available: 20 }
    );
    let negative = err("malformed_negative_length.envelope");
    assert!(matches!(negative, EnvelopeError::InvalidLength { item: 0, .. }), "{negative}");
    // Beyond u64: serde reads it as a float, which is no byte count either.
    let huge = err("malformed_huge_length.envelope");
    assert!(matches!(huge, EnvelopeError::InvalidLength { item: 0, .. }), "{huge}");

    // Invalid UTF-8 frames fine; the event inside it is what is refused.
    let body = fixture("malformed_invalid_utf8.envelope");
    let envelope = sentry_envelope::parse(&body).unwrap();
    let arrival =
        Arrival { received_at: time::OffsetDateTime::UNIX_EPOCH, envelope_event_id: None, fallback_event_id: "0" };
    assert_eq!(sentry_event::parse(envelope.items[0].payload, arrival).unwrap_err().reason(), "invalid_json");
}

#[test]
fn a_ten_megabyte_item_type_is_refused_without_trouble() {
    let mut body = b"{}\n{\"type\":\"".to_vec();
    body.extend(std::iter::repeat_n(b'e', 10 * 1024 * 1024));
    body.extend(b"\"}\n{}\n");
    assert_eq!(sentry_envelope::parse(&body).unwrap_err(), EnvelopeError::HeaderTooLong { item: Some(0) });
}

/// An envelope captured from a real SDK (`tests/fixtures/sdk-capture/`).
fn captured(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sdk-capture/out").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn captured_browser_sdk_11_12() {
    for session in ["browser-0.envelope", "browser-5.envelope", "browser-6.envelope"] {
        assert_eq!(events_of(&captured(session)).0, ["session"]);
    }
    let (_, events) = events_of(&captured("browser-2.envelope"));
    let event = &events[0];
    assert_eq!((event.exception_type.as_str(), event.message.as_str()), ("RangeError", "quantity 5 out of range"));
    assert_eq!(event.exceptions[0].handled, Some(true));
    assert!(event.exceptions[0].stacktrace.iter().all(|f| f.context_line.is_none()));
    assert_eq!(event.release, "shop@2.0.0");

    // captureMessage: a synthetic exception, read as a message with a stack.
    let (_, events) = events_of(&captured("browser-4.envelope"));
    let message = &events[0];
    assert!(message.exceptions.is_empty());
    assert_eq!((message.exception_type.as_str(), message.message.as_str()), ("", "browser message"));
    assert_eq!(message.level, Level::Info);
    assert_eq!(message.stacktrace.len(), 1);
    assert_eq!(message.stacktrace[0].lineno, Some(19));

    let (_, events) = events_of(&captured("browser-7.envelope"));
    assert_eq!(events[0].exceptions[0].handled, Some(false));
}

#[test]
fn captured_rust_sdk_0_49() {
    let (types, events) = events_of(&captured("rust-0.envelope"));
    assert_eq!(types, ["event"]);
    let panic = &events[0];
    assert_eq!(panic.event_id, "ad07ba899f5243c282a343152b0489c9");
    assert_eq!((panic.exception_type.as_str(), panic.level), ("panic", Level::Fatal));
    // The runtime is the context typed `runtime`, here named `rust`.
    let runtime = panic.runtime.as_ref().unwrap();
    assert_eq!((runtime.name.as_str(), runtime.version.as_str()), ("rustc", "1.95.0"));
    assert!(panic.extra.contains_key("debug_meta"));

    // The SDK marks its own panic handler in-app; the built-in rules do not.
    let processed = booboo_core::process(panic.clone());
    let in_app: Vec<&str> =
        processed.event.exceptions[0].stacktrace.iter().filter(|f| f.in_app).map(|f| f.function.as_str()).collect();
    assert_eq!(in_app, ["rustsdk::main", "rustsdk::main::{{closure}}", "rustsdk::average"]);
    assert_eq!(processed.culprit, "rustsdk::average in main.rs");

    let (_, events) = events_of(&captured("rust-3.envelope"));
    assert_eq!((events[0].message.as_str(), events[0].level), ("rust message", Level::Warning));
}

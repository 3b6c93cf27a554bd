//! Any bytes as a Sentry envelope: framing never panics, and every event item
//! that parses goes through the rest of the pipeline and survives being
//! stored and read back.

#![no_main]

use booboo_core::sentry_envelope;
use booboo_core::sentry_event::{self, Arrival};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let first_line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let _ = sentry_envelope::read_header(first_line);
    let Ok(envelope) = sentry_envelope::parse(data) else {
        return;
    };
    let envelope_event_id = envelope.event_id();
    for item in envelope.items.iter().filter(|i| i.item_type == "event") {
        let arrival = Arrival {
            received_at: time::OffsetDateTime::UNIX_EPOCH,
            envelope_event_id: envelope_event_id.as_deref(),
            fallback_event_id: "00000000000000000000000000000000",
        };
        if let Ok(event) = sentry_event::parse(item.payload, arrival) {
            round_trip(event);
        }
    }
});

/// What the server does with a parsed event, and what the API does when it
/// reads the stored JSON back.
fn round_trip(event: booboo_core::Event) {
    let processed = booboo_core::process(event);
    let stored = serde_json::to_string(&processed.event).expect("an event always serialises");
    let read_back: booboo_core::Event = serde_json::from_str(&stored).expect("a stored event reads back");
    assert_eq!(read_back.event_id, processed.event.event_id);
}

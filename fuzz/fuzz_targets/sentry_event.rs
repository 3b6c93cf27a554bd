//! Any bytes as a Sentry event payload (the store endpoint's body): no
//! panics, and an accepted event survives being stored and read back.

#![no_main]

use booboo_core::sentry_event::{self, Arrival};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let arrival = Arrival {
        received_at: time::OffsetDateTime::UNIX_EPOCH,
        envelope_event_id: None,
        fallback_event_id: "00000000000000000000000000000000",
    };
    if let Ok(event) = sentry_event::parse(data, arrival) {
        let processed = booboo_core::process(event);
        let stored = serde_json::to_string(&processed.event).expect("an event always serialises");
        let read_back: booboo_core::Event = serde_json::from_str(&stored).expect("a stored event reads back");
        assert_eq!(read_back.event_id, processed.event.event_id);
    }
});

//! Any bytes as a booboo protocol body: no panics, and an accepted event
//! survives being stored and read back.

#![no_main]

use booboo_core::booboo_payload::{self, Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = time::OffsetDateTime::UNIX_EPOCH;
    if let Ok(Payload::Event(event)) = booboo_payload::parse(data, now, "00000000000000000000000000000000") {
        let processed = booboo_core::process(*event);
        let stored = serde_json::to_string(&processed.event).expect("an event always serialises");
        let read_back: booboo_core::Event = serde_json::from_str(&stored).expect("a stored event reads back");
        assert_eq!(read_back.event_id, processed.event.event_id);
    }
});

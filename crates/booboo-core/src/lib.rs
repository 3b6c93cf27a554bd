//! booboo's pure core: the event model, the parsers that fill it (booboo's
//! protocol, Sentry's envelopes and events), server-side
//! scrubbing and grouping. No I/O, no clock, no async: every function here is
//! a function of its inputs.

pub mod booboo_payload;
pub mod event;
pub mod fingerprint;
pub mod in_app;
pub mod issue_summary;
pub mod json_reader;
pub mod limits;
pub mod log_entry;
pub mod release_order;
pub mod scrub;
pub mod sentry_envelope;
pub mod sentry_event;
pub mod timestamp;

pub use event::{Event, Level};

/// An event ready for the store: normalised, scrubbed and grouped.
#[derive(Debug, Clone)]
pub struct ProcessedEvent {
    pub event: Event,
    pub fingerprint: fingerprint::Grouping,
    pub title: String,
    pub culprit: String,
    pub user_key: Option<String>,
}

/// The tail of the pipeline shared by every wire format:
/// in-app rules → scrub → bound → fingerprint → summarise. Scrubbing comes first so that
/// it sees locals as the nested values Sentry SDKs send, before bounding
/// turns them into text.
pub fn process(mut event: Event) -> ProcessedEvent {
    in_app::apply(&mut event);
    scrub::scrub_event(&mut event);
    limits::apply(&mut event);
    let fingerprint = fingerprint::group(&event);
    ProcessedEvent {
        title: issue_summary::title(&event),
        culprit: issue_summary::culprit(&event),
        user_key: issue_summary::user_key(&event),
        fingerprint,
        event,
    }
}

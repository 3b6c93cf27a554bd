//! Sentry's envelope framing: one JSON header line, then items, each a JSON
//! header line and a payload. A payload is `length` bytes when the item
//! header says so, else everything up to the next newline. The newline after
//! the last payload is optional.
//!
//! This reads the framing only; what an item means is for its caller (event
//! items go to `sentry_event`). Payloads are borrowed from the body, so a
//! large attachment costs no copy.

use crate::json_reader as jr;
use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};
use serde_json::{Map, Value};
use std::fmt;

/// Longest header line read, for the envelope and for each item. Real
/// headers are a few hundred bytes; a 10 MB "type" is an attack, not a client.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most items in one envelope. SDKs send a handful; the bound keeps a body of
/// tiny items from costing more memory than its size suggests.
pub const MAX_ITEMS: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<'a> {
    pub header: Map<String, Value>,
    pub items: Vec<Item<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    /// The item's `type` as sent (`event`, `session`, `attachment`, …).
    pub item_type: String,
    pub payload: &'a [u8],
}

impl Envelope<'_> {
    /// The envelope header's `event_id`, normalised to 32 lowercase hex
    /// characters; `None` when absent or malformed.
    pub fn event_id(&self) -> Option<String> {
        self.header.get("event_id").and_then(Value::as_str).and_then(crate::booboo_payload::normalise_event_id)
    }

    /// The DSN the SDK put in the header, if any.
    pub fn dsn(&self) -> Option<&str> {
        dsn_of(&self.header)
    }
}

/// The event id of envelope item `index` when it has none of its own and
/// the header's id already names another event: derived from both, so the
/// same envelope sent again gets the same ids and is recognised as a retry.
pub fn item_event_id(envelope_event_id: &str, index: usize) -> String {
    let mut hasher = Blake2b::<U16>::new();
    hasher.update(envelope_event_id.as_bytes());
    hasher.update(index.to_le_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The `dsn` of an envelope header, which carries the key when no HTTP
/// header or query parameter does (tunnels, some browser set-ups).
pub fn dsn_of(header: &Map<String, Value>) -> Option<&str> {
    header.get("dsn").and_then(Value::as_str).filter(|d| !d.is_empty())
}

/// Why a body is not an envelope. Item numbers count from 0 in body order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Nothing but whitespace.
    Empty,
    /// A header line (of the envelope when `item` is `None`) is too long.
    HeaderTooLong {
        item: Option<usize>,
    },
    /// A header line is not a JSON object.
    InvalidHeader {
        item: Option<usize>,
        problem: String,
    },
    /// An item header has no string `type`.
    MissingType {
        item: usize,
    },
    /// `length` is not a non-negative whole number.
    InvalidLength {
        item: usize,
        problem: String,
    },
    /// `length` runs past the end of the body.
    LengthPastEnd {
        item: usize,
        length: u64,
        available: usize,
    },
    /// A payload of declared length is followed by something other than a
    /// newline or the end of the body.
    MissingNewline {
        item: usize,
    },
    TooManyItems,
}

impl EnvelopeError {
    /// A stable name for counting rejections.
    pub fn reason(&self) -> &'static str {
        match self {
            EnvelopeError::Empty => "empty_envelope",
            EnvelopeError::HeaderTooLong { .. } | EnvelopeError::InvalidHeader { .. } => "invalid_envelope_header",
            EnvelopeError::MissingType { .. } => "invalid_envelope_header",
            EnvelopeError::InvalidLength { .. }
            | EnvelopeError::LengthPastEnd { .. }
            | EnvelopeError::MissingNewline { .. } => "invalid_envelope_length",
            EnvelopeError::TooManyItems => "too_many_envelope_items",
        }
    }
}

fn which(item: Option<usize>) -> String {
    match item {
        None => "the envelope header (first line)".to_string(),
        Some(i) => format!("the header of envelope item {i}"),
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Empty => write!(f, "the envelope is empty: it needs at least a header line"),
            EnvelopeError::HeaderTooLong { item } => {
                write!(f, "{} is longer than {MAX_HEADER_BYTES} bytes", which(*item))
            }
            EnvelopeError::InvalidHeader { item, problem } => {
                write!(f, "{} must be one line holding a JSON object: {problem}", which(*item))
            }
            EnvelopeError::MissingType { item } => {
                write!(f, "the header of envelope item {item} needs a string `type`, such as \"event\"")
            }
            EnvelopeError::InvalidLength { item, problem } => {
                write!(f, "the `length` of envelope item {item} {problem}")
            }
            EnvelopeError::LengthPastEnd { item, length, available } => write!(
                f,
                "envelope item {item} declares a length of {length} bytes but only {available} bytes follow its header"
            ),
            EnvelopeError::MissingNewline { item } => write!(
                f,
                "envelope item {item} must be followed by a newline or the end of the body after its declared length"
            ),
            EnvelopeError::TooManyItems => write!(f, "an envelope may hold at most {MAX_ITEMS} items"),
        }
    }
}

/// Splits off one line; the newline is consumed and not part of the line.
fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[]),
    }
}

/// The first line of an envelope as its header. Enough to authenticate by
/// the header's `dsn` before the rest of the body is decompressed.
pub fn read_header(line: &[u8]) -> Result<Map<String, Value>, EnvelopeError> {
    read_object(line, None)
}

fn read_object(line: &[u8], item: Option<usize>) -> Result<Map<String, Value>, EnvelopeError> {
    if line.len() > MAX_HEADER_BYTES {
        return Err(EnvelopeError::HeaderTooLong { item });
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(EnvelopeError::InvalidHeader { item, problem: format!("got {}", jr::kind_of(&other)) }),
        Err(e) => Err(EnvelopeError::InvalidHeader { item, problem: e.to_string() }),
    }
}

fn declared_length(header: &Map<String, Value>, item: usize) -> Result<Option<u64>, EnvelopeError> {
    let invalid = |problem: &str| EnvelopeError::InvalidLength { item, problem: problem.to_string() };
    match header.get("length") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(len), _) => Ok(Some(len)),
            (None, Some(_)) => Err(invalid("must not be negative")),
            _ => Err(invalid("must be a whole number of bytes")),
        },
        Some(other) => Err(invalid(&format!("must be a number of bytes, got {}", jr::kind_of(other)))),
    }
}

/// Reads the framing of a whole envelope.
pub fn parse(body: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(EnvelopeError::Empty);
    }
    let (line, mut rest) = split_line(body);
    let header = read_object(line, None)?;
    let mut items = Vec::new();
    loop {
        // Blank lines between items carry nothing; skipping them also takes
        // care of a trailing newline (or two) at the end of the body.
        while let Some((b'\n' | b'\r', tail)) = rest.split_first() {
            rest = tail;
        }
        if rest.is_empty() {
            break;
        }
        let index = items.len();
        if index == MAX_ITEMS {
            return Err(EnvelopeError::TooManyItems);
        }
        let (line, after_header) = split_line(rest);
        let item_header = read_object(line, Some(index))?;
        let item_type = match item_header.get("type") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            _ => return Err(EnvelopeError::MissingType { item: index }),
        };
        let (payload, after_payload) = match declared_length(&item_header, index)? {
            Some(length) => {
                if length > after_header.len() as u64 {
                    return Err(EnvelopeError::LengthPastEnd { item: index, length, available: after_header.len() });
                }
                let (payload, tail) = after_header.split_at(length as usize);
                let tail = match tail {
                    [] => tail,
                    [b'\n', more @ ..] => more,
                    [b'\r', b'\n', more @ ..] => more,
                    _ => return Err(EnvelopeError::MissingNewline { item: index }),
                };
                (payload, tail)
            }
            None => split_line(after_header),
        };
        items.push(Item { item_type, payload });
        rest = after_payload;
    }
    Ok(Envelope { header, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_with_and_without_length() {
        let body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n\
            {\"type\":\"attachment\",\"length\":10}\n\
            \xef\xbb\xbfHello\r\n\n\
            {\"type\":\"event\"}\n\
            {\"message\":\"hi\"}";
        let envelope = parse(body).unwrap();
        assert_eq!(envelope.event_id().as_deref(), Some("9ec79c33ec9942ab8353589fcb2e04dc"));
        assert_eq!(envelope.items.len(), 2);
        assert_eq!(envelope.items[0].item_type, "attachment");
        assert_eq!(envelope.items[0].payload, b"\xef\xbb\xbfHello\r\n");
        assert_eq!(envelope.items[1].payload, b"{\"message\":\"hi\"}");
    }

    #[test]
    fn a_header_alone_is_an_envelope_without_items() {
        assert!(parse(b"{}").unwrap().items.is_empty());
        assert!(parse(b"{}\n").unwrap().items.is_empty());
        assert_eq!(parse(b"  \n").unwrap_err(), EnvelopeError::Empty);
    }

    #[test]
    fn empty_payloads_with_and_without_length() {
        let envelope = parse(b"{}\n{\"type\":\"a\",\"length\":0}\n\n{\"type\":\"b\"}\n\n{\"type\":\"c\"}").unwrap();
        let types: Vec<_> = envelope.items.iter().map(|i| (i.item_type.as_str(), i.payload.len())).collect();
        assert_eq!(types, vec![("a", 0), ("b", 0), ("c", 0)]);
    }

    #[test]
    fn lengths_that_cannot_be_right_are_refused() {
        let err = parse(b"{}\n{\"type\":\"event\",\"length\":50}\n{}").unwrap_err();
        assert_eq!(err, EnvelopeError::LengthPastEnd { item: 0, length: 50, available: 2 });
        assert!(err.to_string().contains("50 bytes"), "{err}");
        let err = parse(b"{}\n{\"type\":\"event\",\"length\":-1}\n{}").unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
        let err = parse(b"{}\n{\"type\":\"event\",\"length\":18446744073709551615}\n{}").unwrap_err();
        assert!(matches!(err, EnvelopeError::LengthPastEnd { .. }), "{err}");
        let err = parse(b"{}\n{\"type\":\"event\",\"length\":1.5}\n{}").unwrap_err();
        assert!(err.to_string().contains("whole number"), "{err}");
        let err = parse(b"{}\n{\"type\":\"event\",\"length\":1}\n{}").unwrap_err();
        assert_eq!(err, EnvelopeError::MissingNewline { item: 0 });
    }

    #[test]
    fn headers_must_be_json_objects() {
        let err = parse(b"not json\n").unwrap_err();
        assert!(matches!(err, EnvelopeError::InvalidHeader { item: None, .. }), "{err}");
        assert!(err.to_string().contains("envelope header"), "{err}");
        let err = parse(b"{}\n[1]\n{}").unwrap_err();
        assert!(err.to_string().contains("item 0") && err.to_string().contains("a list"), "{err}");
        assert_eq!(parse(b"{}\n{\"length\":2}\n{}").unwrap_err(), EnvelopeError::MissingType { item: 0 });
        assert_eq!(parse(b"{}\n{\"type\":7}\n{}").unwrap_err(), EnvelopeError::MissingType { item: 0 });
        assert!(matches!(parse(b"{\"a\":\"\xff\"}\n").unwrap_err(), EnvelopeError::InvalidHeader { .. }));
    }

    #[test]
    fn oversized_headers_and_item_counts_are_bounded() {
        let mut body = b"{}\n{\"type\":\"".to_vec();
        body.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        body.extend(b"\"}\n{}");
        assert_eq!(parse(&body).unwrap_err(), EnvelopeError::HeaderTooLong { item: Some(0) });
        let many = format!("{{}}\n{}", "{\"type\":\"x\"}\n\n".repeat(MAX_ITEMS + 1));
        assert_eq!(parse(many.as_bytes()).unwrap_err(), EnvelopeError::TooManyItems);
    }

    #[test]
    fn item_ids_differ_from_the_header_and_each_other_and_repeat() {
        let header = "9ec79c33ec9942ab8353589fcb2e04dc";
        let (one, two) = (item_event_id(header, 1), item_event_id(header, 2));
        assert_eq!(one.len(), 32);
        assert!(one != two && one != header);
        assert_eq!(one, item_event_id(header, 1));
    }

    #[test]
    fn the_dsn_is_read_from_the_header() {
        let header = read_header(br#"{"dsn":"https://abc@host/1","sent_at":"2026-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(dsn_of(&header), Some("https://abc@host/1"));
    }
}

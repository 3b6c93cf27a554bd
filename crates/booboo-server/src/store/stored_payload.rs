//! How an event's payload is kept in the `events` table: the normalised
//! event's JSON compressed with zstd in the `body` column, `payload` left
//! empty. Rows written before compression (and any whose compression
//! failed) have no `body` and their JSON in `payload`; readers take
//! whichever the row has, so old and new rows live side by side.
//!
//! What searches read from an event besides its columns (its tags, its
//! user's e-mail) is kept in small columns of their own (`tags`,
//! `user_email`), because a compressed body cannot be looked into by SQL.

use booboo_core::Event;

/// zstd's default level: about 3× smaller for event JSON at a few tens of
/// microseconds per event, off the writer's path (see [`super::NewEvent`]).
const LEVEL: i32 = 3;

/// The compressed form of an event's JSON; `None` if zstd refused (then the
/// JSON is stored as text, as before compression).
pub fn compress(json: &str) -> Option<Vec<u8>> {
    zstd::bulk::compress(json.as_bytes(), LEVEL).ok()
}

/// The JSON of a stored event, from its row's `payload` and `body`.
pub(super) fn read(payload: String, body: Option<Vec<u8>>) -> Result<String, sqlx::Error> {
    let Some(body) = body else { return Ok(payload) };
    let bytes = zstd::stream::decode_all(body.as_slice())
        .map_err(|e| sqlx::Error::Decode(format!("a stored event's compressed payload is damaged: {e}").into()))?;
    String::from_utf8(bytes)
        .map_err(|e| sqlx::Error::Decode(format!("a stored event's payload is not UTF-8: {e}").into()))
}

/// The event's tags as a JSON object, for the `tags` column.
pub(super) fn tags_column(event: &Event) -> String {
    serde_json::to_string(&event.tags).unwrap_or_else(|_| "{}".into())
}

/// The event's user's e-mail as text, for the `user_email` column (what
/// the search's `user.email:` compares with).
pub(super) fn user_email_column(event: &Event) -> Option<String> {
    match event.user.as_ref()?.get("email")? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_payloads_read_back_and_old_rows_read_as_they_are() {
        let json = format!("{{\"message\":\"{}\"}}", "boom ".repeat(500));
        let body = compress(&json).unwrap();
        assert!(body.len() * 10 < json.len(), "{} of {}", body.len(), json.len());
        assert_eq!(read(String::new(), Some(body)).unwrap(), json);
        assert_eq!(read(json.clone(), None).unwrap(), json);
    }

    #[test]
    fn a_damaged_body_is_an_error_not_a_panic() {
        assert!(read(String::new(), Some(b"not zstd at all".to_vec())).is_err());
        let mut body = compress("{\"a\":1}").unwrap();
        body.truncate(body.len() / 2);
        assert!(read(String::new(), Some(body)).is_err());
    }
}

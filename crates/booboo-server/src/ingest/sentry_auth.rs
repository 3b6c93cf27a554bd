//! Where Sentry SDKs put their key: the `X-Sentry-Auth` header, an
//! `Authorization: Sentry …` header, the `sentry_key` query parameter, or the
//! `dsn` in an envelope's header. The key is the project's ingestion token.
//! A request may use several of these places, but they must agree.

use super::rejection::Rejection;
use axum::http::{header, HeaderMap};

/// The one key the request carries outside its body, if any; several that
/// disagree are refused.
pub fn key_outside_body(headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, Rejection> {
    let mut found: Vec<(&'static str, String)> = Vec::new();
    if let Some(key) = headers.get("x-sentry-auth").and_then(|v| v.to_str().ok()).and_then(key_from_auth_header) {
        found.push(("the X-Sentry-Auth header", key));
    }
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let is_sentry = value.trim_start().get(..7).is_some_and(|s| s.eq_ignore_ascii_case("sentry "));
        if let Some(key) = is_sentry.then(|| key_from_auth_header(value)).flatten() {
            found.push(("the Authorization header", key));
        }
    }
    if let Some(key) = query.and_then(key_from_query) {
        found.push(("the sentry_key parameter", key));
    }
    let Some((first_place, first_key)) = found.first().cloned() else {
        return Ok(None);
    };
    if let Some((place, _)) = found.iter().find(|(_, key)| *key != first_key) {
        return Err(Rejection::ConflictingAuth(format!("{first_place} and {place} name different keys")));
    }
    Ok(Some(first_key))
}

/// `Sentry sentry_key=KEY, sentry_version=7, sentry_client=…` → `KEY`.
pub fn key_from_auth_header(value: &str) -> Option<String> {
    let value = value.trim();
    let pairs = match value.get(..6) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sentry") => &value[6..],
        _ => value,
    };
    pairs.split(',').filter_map(|pair| pair.split_once('=')).find_map(|(name, value)| {
        let value = value.trim().trim_matches('"');
        (name.trim() == "sentry_key" && !value.is_empty()).then(|| value.to_string())
    })
}

/// `sentry_key=KEY&sentry_version=7` → `KEY`.
pub fn key_from_query(query: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(name, value)| (name == "sentry_key" && !value.is_empty()).then(|| value.to_string()))
}

/// The key and project id of a Sentry DSN,
/// `SCHEME://KEY[:SECRET]@HOST[:PORT]/[PATH/]PROJECT_ID`.
pub fn parse_dsn(dsn: &str) -> Option<(String, Option<i64>)> {
    let (_, rest) = dsn.split_once("://")?;
    let (userinfo, location) = rest.split_once('@')?;
    let key = userinfo.split(':').next().unwrap_or("").to_string();
    if key.is_empty() {
        return None;
    }
    let path = location.split_once('/').map(|(_, path)| path).unwrap_or("");
    let project_id = path.trim_end_matches('/').rsplit('/').next().and_then(|id| id.parse().ok());
    Some((key, project_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_key_is_read_from_each_header_form() {
        let python = "Sentry sentry_key=abc, sentry_version=7, sentry_client=sentry.python/2.0.0";
        assert_eq!(key_from_auth_header(python).as_deref(), Some("abc"));
        assert_eq!(key_from_auth_header("sentry_version=7,sentry_key=\"abc\"").as_deref(), Some("abc"));
        assert_eq!(key_from_auth_header("Sentry sentry_version=7").as_deref(), None);
        assert_eq!(key_from_query("sentry_version=7&sentry_key=abc").as_deref(), Some("abc"));
        assert_eq!(key_from_query("sentry_key=").as_deref(), None);
    }

    #[test]
    fn places_must_agree() {
        let mut headers = HeaderMap::new();
        headers.insert("x-sentry-auth", HeaderValue::from_static("Sentry sentry_key=abc"));
        headers.insert("authorization", HeaderValue::from_static("Bearer not-a-sentry-key"));
        assert_eq!(key_outside_body(&headers, Some("sentry_key=abc")).unwrap().as_deref(), Some("abc"));
        let err = key_outside_body(&headers, Some("sentry_key=def")).unwrap_err();
        assert!(err.detail().contains("X-Sentry-Auth") && err.detail().contains("sentry_key"), "{}", err.detail());
        headers.insert("authorization", HeaderValue::from_static("Sentry sentry_key=xyz"));
        assert!(key_outside_body(&headers, None).is_err());
        assert_eq!(key_outside_body(&HeaderMap::new(), Some("x=1")).unwrap(), None);
    }

    #[test]
    fn dsns_give_key_and_project() {
        assert_eq!(parse_dsn("https://abc@o1.ingest.example/42"), Some(("abc".into(), Some(42))));
        assert_eq!(parse_dsn("http://abc:secret@host:8000/prefix/7/"), Some(("abc".into(), Some(7))));
        assert_eq!(parse_dsn("http://abc@host"), Some(("abc".into(), None)));
        assert_eq!(parse_dsn("http://host/1"), None);
        assert_eq!(parse_dsn("nonsense"), None);
    }
}

//! Sentry's envelope and store endpoints through the router, without a
//! socket, on a real SQLite store.

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use booboo_server::app::app;
use booboo_server::config::{Config, Overrides};
use booboo_server::group_commit::Writer;
use booboo_server::metrics::Metrics;
use booboo_server::state::AppState;
use booboo_server::store::{self, Page};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Harness {
    state: AppState,
    key: String,
    project_id: i64,
    other_key: String,
    other_project_id: i64,
    db_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn harness_with(overrides: Overrides) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("booboo.db");
    let config = Config::load(Overrides { data_dir: Some(dir.path().to_path_buf()), ..overrides }).unwrap();
    let store = store::open(&config.database_url).await.unwrap();
    let key = format!("{:032x}", rand_u128());
    let (project, _) = store.create_project("acme", "web", &key, T0).await.unwrap();
    let other_key = format!("{:032x}", rand_u128());
    let (other, _) = store.create_project("acme", "api", &other_key, T0).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(store.clone(), metrics.clone(), config.queue_capacity, config.max_batch);
    Harness {
        state: AppState { store, writer, metrics, config: Arc::new(config), mailer: None },
        key,
        project_id: project.id,
        other_key,
        other_project_id: other.id,
        db_path,
        _dir: dir,
    }
}

async fn harness() -> Harness {
    harness_with(Overrides::default()).await
}

struct Answer {
    status: StatusCode,
    headers: BTreeMap<String, String>,
    body: Value,
}

impl Answer {
    fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or_else(|| panic!("no detail in {}", self.body))
    }
}

async fn send(state: &AppState, request: Request<Body>) -> Answer {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

fn auth(key: &str) -> String {
    format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.python/2.20.0")
}

fn post_envelope(project_id: i64, key: &str) -> axum::http::request::Builder {
    Request::post(format!("/api/{project_id}/envelope/"))
        .header("X-Sentry-Auth", auth(key))
        .header("Content-Type", "application/x-sentry-envelope")
}

/// An envelope of JSON lines: the header, then each item's header and payload.
fn envelope(header: Value, items: &[(Value, Vec<u8>)]) -> Vec<u8> {
    let mut out = serde_json::to_vec(&header).unwrap();
    for (item_header, payload) in items {
        out.push(b'\n');
        out.extend(serde_json::to_vec(item_header).unwrap());
        out.push(b'\n');
        out.extend(payload);
    }
    out.push(b'\n');
    out
}

/// A sentry-python event for `ZeroDivisionError` in `checkout`.
fn python_event(event_id: &str) -> Value {
    json!({
        "event_id": event_id, "level": "error", "platform": "python",
        "timestamp": "2026-01-31T12:00:00.364168Z",
        "exception": {"values": [{"type": "ZeroDivisionError", "value": "division by zero",
            "mechanism": {"type": "generic", "handled": true},
            "stacktrace": {"frames": [
                {"filename": "app.py", "abs_path": "/srv/shop/app.py", "function": "checkout", "module": "__main__",
                 "lineno": 7, "context_line": "    total = price / qty", "pre_context": ["def checkout(price, qty):"],
                 "post_context": ["    return total"], "vars": {"price": "10", "qty": "0"}, "in_app": true}]}}]},
        "breadcrumbs": {"values": [{"category": "cart", "message": "added item", "level": "info",
                                    "timestamp": "2026-01-31T11:59:59Z"}]},
        "user": {"id": "u-7"}, "tags": {"shop": "eu"}, "environment": "staging", "release": "1.2.3"
    })
}

fn event_envelope(event_id: &str) -> Vec<u8> {
    envelope(
        json!({"event_id": event_id, "sent_at": "2026-01-31T12:00:00Z"}),
        &[(json!({"type": "event"}), serde_json::to_vec(&python_event(event_id)).unwrap())],
    )
}

fn new_id() -> String {
    format!("{:032x}", rand_u128())
}

async fn stored_payload(h: &Harness, event_id: &str) -> Option<Value> {
    let event = h.state.store.event(ADMIN, event_id).await.unwrap()?;
    assert_eq!(event.project_id, h.project_id);
    Some(serde_json::from_str(&event.payload).unwrap())
}

async fn stored_event_count(h: &Harness) -> usize {
    let issues = h
        .state
        .store
        .list_issues(ADMIN, h.project_id, &Default::default(), Page { offset: 0, limit: 100 })
        .await
        .unwrap();
    issues.items.iter().map(|i| i.count as usize).sum()
}

#[tokio::test]
async fn an_envelope_event_is_stored_and_answered_with_its_id() {
    let h = harness().await;
    let id = new_id();
    let body = event_envelope(&id);
    let answer = send(&h.state, post_envelope(h.project_id, &h.key).body(Body::from(body)).unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, json!({ "id": id }));
    assert_eq!(answer.headers["access-control-allow-origin"], "*");

    let stored = stored_payload(&h, &id).await.expect("the event is stored");
    assert_eq!(stored["exception_type"], "ZeroDivisionError");
    assert_eq!(stored["exceptions"][0]["stacktrace"][0]["filename"], "/srv/shop/app.py");
    assert_eq!(stored["exceptions"][0]["stacktrace"][0]["vars"]["qty"], "0");
    assert_eq!(stored["exceptions"][0]["handled"], true);
    assert_eq!(stored["breadcrumbs"][0]["message"], "added item");
    assert_eq!(stored["user"]["id"], "u-7");
    assert_eq!(stored["tags"]["shop"], "eu");
    assert_eq!((stored["environment"].as_str(), stored["release"].as_str()), (Some("staging"), Some("1.2.3")));
    assert_eq!(
        h.state.metrics.render(0, 1).lines().find(|l| l.starts_with("booboo_events_accepted_total")),
        Some("booboo_events_accepted_total 1")
    );
}

#[tokio::test]
async fn the_key_may_come_from_any_of_the_four_places() {
    let h = harness().await;
    let p = h.project_id;

    let id = new_id();
    let by_query = Request::post(format!("/api/{p}/envelope/?sentry_version=7&sentry_key={}", h.key))
        .header("Content-Type", "text/plain;charset=UTF-8")
        .body(Body::from(event_envelope(&id)))
        .unwrap();
    assert_eq!(send(&h.state, by_query).await.status, StatusCode::OK);
    assert!(stored_payload(&h, &id).await.is_some());

    let id = new_id();
    let by_authorization = Request::post(format!("/api/{p}/envelope/"))
        .header("Authorization", format!("Sentry sentry_key={}, sentry_version=7", h.key))
        .body(Body::from(event_envelope(&id)))
        .unwrap();
    assert_eq!(send(&h.state, by_authorization).await.status, StatusCode::OK);
    assert!(stored_payload(&h, &id).await.is_some());

    let id = new_id();
    let dsn = format!("http://{}@tunnel.example/{p}", h.key);
    let body = envelope(
        json!({"event_id": id, "dsn": dsn}),
        &[(json!({"type": "event"}), serde_json::to_vec(&python_event(&id)).unwrap())],
    );
    let by_dsn = Request::post(format!("/api/{p}/envelope/")).body(Body::from(gzip(&body))).unwrap();
    let by_dsn = with_encoding(by_dsn, "gzip");
    let answer = send(&h.state, by_dsn).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(stored_payload(&h, &id).await.is_some());

    let id = new_id();
    let store = Request::post(format!("/api/{p}/store/"))
        .header("X-Sentry-Auth", auth(&h.key))
        .header("Content-Type", "application/json")
        .body(Body::from(serde_json::to_vec(&python_event(&id)).unwrap()))
        .unwrap();
    let answer = send(&h.state, store).await;
    assert_eq!((answer.status, answer.body.clone()), (StatusCode::OK, json!({ "id": id })));
    assert!(stored_payload(&h, &id).await.is_some());
}

#[tokio::test]
async fn missing_unknown_and_misplaced_keys_are_refused_with_a_reason() {
    let h = harness().await;
    let p = h.project_id;
    let body = || Body::from(event_envelope(&new_id()));

    let none = send(&h.state, Request::post(format!("/api/{p}/envelope/")).body(body()).unwrap()).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(none.detail().contains("X-Sentry-Auth") && none.detail().contains("sentry_key"), "{}", none.detail());
    assert_eq!(none.headers["access-control-allow-origin"], "*");
    assert!(none.headers["x-sentry-error"].contains("missing Sentry key"));

    let unknown = send(&h.state, post_envelope(p, &"f".repeat(32)).body(body()).unwrap()).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.detail().contains("unknown"), "{}", unknown.detail());

    let other = send(&h.state, post_envelope(p, &h.other_key).body(body()).unwrap()).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(other.detail().contains("another project"), "{}", other.detail());
    assert_eq!(h.state.metrics.rejected_count("wrong_project"), 1);

    let two_keys = Request::post(format!("/api/{p}/envelope/?sentry_key={}", h.other_key))
        .header("X-Sentry-Auth", auth(&h.key))
        .body(body())
        .unwrap();
    let two_keys = send(&h.state, two_keys).await;
    assert_eq!(two_keys.status, StatusCode::FORBIDDEN);
    assert!(two_keys.detail().contains("different keys"), "{}", two_keys.detail());

    let id = new_id();
    let disagreeing_dsn = envelope(
        json!({"event_id": id, "dsn": format!("http://{}@host/{p}", h.other_key)}),
        &[(json!({"type": "event"}), serde_json::to_vec(&python_event(&id)).unwrap())],
    );
    let answer = send(&h.state, post_envelope(p, &h.key).body(Body::from(disagreeing_dsn)).unwrap()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.detail().contains("dsn"), "{}", answer.detail());

    let other_project_in_dsn = envelope(json!({"dsn": format!("http://{}@host/{}", h.key, h.other_project_id)}), &[]);
    let answer =
        send(&h.state, Request::post(format!("/api/{p}/envelope/")).body(Body::from(other_project_in_dsn)).unwrap())
            .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.detail().contains(&format!("names project {}", h.other_project_id)), "{}", answer.detail());

    let not_a_number = send(&h.state, post_envelope(0, &h.key).uri("/api/web/envelope/").body(body()).unwrap()).await;
    assert_eq!(not_a_number.status, StatusCode::BAD_REQUEST);
    assert!(not_a_number.detail().contains("project id"), "{}", not_a_number.detail());

    let store_without_key = Request::post(format!("/api/{p}/store/")).body(Body::from("{}")).unwrap();
    assert_eq!(send(&h.state, store_without_key).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stored_event_count(&h).await, 0);
}

#[tokio::test]
async fn the_key_is_checked_before_the_body_is_read() {
    let h = harness().await;
    // A body that is corrupt and declared far over the limit: an unknown key
    // must be what the client hears about.
    let request = post_envelope(h.project_id, &"f".repeat(32))
        .header("Content-Encoding", "gzip")
        .header("Content-Length", "999999999")
        .body(Body::from("not gzip at all"))
        .unwrap();
    let answer = send(&h.state, request).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A valid brotli stream of stored (uncompressed) meta-blocks, written by
/// hand from RFC 7932 so the tests need no brotli compressor.
fn brotli_stored(data: &[u8]) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u32, count: u32) {
            self.acc |= value << self.n;
            self.n += count;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        fn align(&mut self) {
            if self.n > 0 {
                self.put(0, 8 - self.n);
            }
        }
    }
    let mut bits = Bits { out: Vec::new(), acc: 0, n: 0 };
    bits.put(0, 1); // WBITS: a 64 KiB window.
    for chunk in data.chunks(65536) {
        bits.put(0, 1); // ISLAST: no.
        bits.put(0, 2); // MNIBBLES: four nibbles of length.
        bits.put(chunk.len() as u32 - 1, 16);
        bits.put(1, 1); // ISUNCOMPRESSED: yes, the bytes follow aligned.
        bits.align();
        bits.out.extend_from_slice(chunk);
    }
    bits.put(0b11, 2); // ISLAST and ISLASTEMPTY.
    bits.align();
    bits.out
}

fn with_encoding(mut request: Request<Body>, encoding: &str) -> Request<Body> {
    request.headers_mut().insert("content-encoding", encoding.parse().unwrap());
    request
}

#[tokio::test]
async fn every_content_encoding_sdks_use_is_read() {
    let h = harness().await;
    type Compress = fn(&[u8]) -> Vec<u8>;
    let encodings: [(&str, Compress); 6] = [
        ("gzip", gzip),
        ("x-gzip", gzip),
        ("deflate", zlib),
        ("deflate", raw_deflate),
        ("br", brotli_stored),
        ("identity", <[u8]>::to_vec),
    ];
    for (encoding, compress) in encodings {
        let id = new_id();
        let request = post_envelope(h.project_id, &h.key).body(Body::from(compress(&event_envelope(&id)))).unwrap();
        let answer = send(&h.state, with_encoding(request, encoding)).await;
        assert_eq!(answer.status, StatusCode::OK, "{encoding}: {}", answer.body);
        assert!(stored_payload(&h, &id).await.is_some(), "{encoding}");
    }
    // A brotli stream long enough to need several meta-blocks.
    let id = new_id();
    let mut event = python_event(&id);
    event["extra"] = json!({ "padding": "x".repeat(150_000) });
    let body = envelope(json!({}), &[(json!({"type": "event"}), serde_json::to_vec(&event).unwrap())]);
    let request = post_envelope(h.project_id, &h.key).body(Body::from(brotli_stored(&body))).unwrap();
    assert_eq!(send(&h.state, with_encoding(request, "br")).await.status, StatusCode::OK);
    assert_eq!(stored_payload(&h, &id).await.unwrap()["extra"]["padding"].as_str().unwrap().len(), 150_000);

    let request = post_envelope(h.project_id, &h.key).body(Body::from("x")).unwrap();
    let answer = send(&h.state, with_encoding(request, "zstd")).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer.detail().contains("br"), "{}", answer.detail());
}

#[tokio::test]
async fn limits_hold_for_envelopes_events_and_compressed_bombs() {
    let h = harness_with(Overrides {
        max_body_bytes: Some(102_400),
        max_envelope_bytes: Some(512 * 1024),
        ..Overrides::default()
    })
    .await;
    let p = h.project_id;

    // An attachment may be larger than an event, within the envelope limit.
    let id = new_id();
    let mut items = vec![(json!({"type": "event"}), serde_json::to_vec(&python_event(&id)).unwrap())];
    items.push((json!({"type": "attachment", "length": 300_000}), vec![b'a'; 300_000]));
    let answer = send(&h.state, post_envelope(p, &h.key).body(Body::from(envelope(json!({}), &items))).unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    // An event may not.
    let mut event = python_event(&new_id());
    event["extra"] = json!({ "padding": "x".repeat(200_000) });
    let body = envelope(json!({}), &[(json!({"type": "event"}), serde_json::to_vec(&event).unwrap())]);
    let answer = send(&h.state, post_envelope(p, &h.key).body(Body::from(body)).unwrap()).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.detail().contains("envelope item 0") && answer.detail().contains("102400"), "{}", answer.detail());

    // Nor the whole envelope.
    let big = envelope(json!({}), &[(json!({"type": "attachment"}), vec![b'a'; 600 * 1024])]);
    let answer = send(&h.state, post_envelope(p, &h.key).body(Body::from(big)).unwrap()).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.detail().contains("524288"), "{}", answer.detail());

    // 16 MiB of zeros is a few kilobytes of gzip; it stops at the limit.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..16 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 100 * 1024);
    let request = post_envelope(p, &h.key).body(Body::from(bomb.clone())).unwrap();
    let answer = send(&h.state, with_encoding(request, "gzip")).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.detail().contains("once decompressed"), "{}", answer.detail());
    let request =
        Request::post(format!("/api/{p}/store/")).header("X-Sentry-Auth", auth(&h.key)).body(Body::from(bomb)).unwrap();
    let answer = send(&h.state, with_encoding(request, "gzip")).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.detail().contains("102400"), "{}", answer.detail());

    assert_eq!(stored_event_count(&h).await, 1);
}

#[tokio::test]
async fn items_booboo_does_not_keep_are_accepted_and_counted_by_type() {
    let h = harness().await;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../booboo-core/tests/fixtures/sentry/ignored_item_types.envelope");
    let body = std::fs::read(fixture).unwrap();
    let answer = send(&h.state, post_envelope(h.project_id, &h.key).body(Body::from(body)).unwrap()).await;
    assert_eq!((answer.status, answer.body.clone()), (StatusCode::OK, json!({})));
    let m = &h.state.metrics;
    assert_eq!(
        ["session", "sessions", "transaction", "attachment", "check_in", "client_report", "other"]
            .map(|t| m.ignored_item_count(t)),
        [1, 1, 1, 2, 1, 1, 1]
    );
    assert!(m.render(0, 1).contains("booboo_envelope_items_ignored_total{type=\"attachment\"} 2"));
    assert_eq!(stored_event_count(&h).await, 0);

    // The store endpoint of older SDKs took transactions too.
    let transaction = json!({"type": "transaction", "event_id": new_id(), "transaction": "/checkout", "spans": []});
    let request = Request::post(format!("/api/{}/store/", h.project_id))
        .header("X-Sentry-Auth", auth(&h.key))
        .body(Body::from(serde_json::to_vec(&transaction).unwrap()))
        .unwrap();
    let answer = send(&h.state, request).await;
    assert_eq!((answer.status, answer.body.clone()), (StatusCode::OK, json!({ "id": transaction["event_id"] })));
    assert_eq!(m.ignored_item_count("transaction"), 2);
    assert_eq!(stored_event_count(&h).await, 0);
}

#[tokio::test]
async fn malformed_envelopes_are_refused_whole_with_a_reason() {
    let h = harness().await;
    let p = h.project_id;
    let refuse = |body: Vec<u8>| {
        let state = h.state.clone();
        let key = h.key.clone();
        async move { send(&state, post_envelope(p, &key).body(Body::from(body)).unwrap()).await }
    };

    let answer = refuse(b"{event_id: 1}\n{\"type\":\"event\"}\n{}\n".to_vec()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.detail().starts_with("not a Sentry envelope: the envelope header"), "{}", answer.detail());

    let answer = refuse(b"{}\n{\"type\":\"event\",\"length\":4000}\n{}\n".to_vec()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.detail().contains("length of 4000"), "{}", answer.detail());

    let answer = refuse(b"{}\n{\"type\":\"event\"}\n{\"message\":\"caf\xe9\"}\n".to_vec()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.detail().contains("envelope item 0"), "{}", answer.detail());

    // A good event beside a bad one: nothing is stored, the reason names the field.
    let good = new_id();
    let mut bad = python_event(&new_id());
    bad["exception"]["values"][0]["stacktrace"]["frames"][0]["lineno"] = json!("seven");
    let body = envelope(
        json!({}),
        &[
            (json!({"type": "event"}), serde_json::to_vec(&python_event(&good)).unwrap()),
            (json!({"type": "event"}), serde_json::to_vec(&bad).unwrap()),
        ],
    );
    let answer = refuse(body).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer.detail().contains("envelope item 1")
            && answer.detail().contains("exception.values[0].stacktrace.frames[0].lineno"),
        "{}",
        answer.detail()
    );
    assert!(stored_payload(&h, &good).await.is_none());
    assert_eq!(h.state.metrics.rejected_count("invalid_field"), 1);
}

#[tokio::test]
async fn browsers_get_cors_answers() {
    let h = harness().await;
    let preflight = Request::options(format!("/api/{}/envelope/?sentry_key={}", h.project_id, h.key))
        .header("Origin", "https://shop.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type, sentry-trace, baggage")
        .body(Body::empty())
        .unwrap();
    let answer = send(&h.state, preflight).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
    assert!(answer.headers["access-control-allow-methods"].contains("POST"));
    assert_eq!(answer.headers["access-control-allow-headers"], "content-type, sentry-trace, baggage");

    let store_preflight = Request::options(format!("/api/{}/store/", h.project_id)).body(Body::empty()).unwrap();
    let answer = send(&h.state, store_preflight).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers["access-control-allow-headers"].contains("x-sentry-auth"));

    let id = new_id();
    let post = Request::post(format!("/api/{}/envelope/?sentry_key={}&sentry_version=7", h.project_id, h.key))
        .header("Origin", "https://shop.example")
        .header("Content-Type", "text/plain;charset=UTF-8")
        .body(Body::from(event_envelope(&id)))
        .unwrap();
    let answer = send(&h.state, post).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
    assert!(answer.headers["access-control-expose-headers"].contains("x-sentry-rate-limits"));
}

#[tokio::test]
async fn the_same_crash_from_either_protocol_is_one_issue() {
    let h = harness().await;
    let sentry_id = new_id();
    let answer =
        send(&h.state, post_envelope(h.project_id, &h.key).body(Body::from(event_envelope(&sentry_id))).unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let frame = json!({"filename": "/home/deploy/shop/app.py", "function": "checkout", "lineno": 9,
        "context_line": "    total = price / qty", "pre_context": [], "post_context": [], "vars": {}, "in_app": true});
    let booboo = body(
        "unused",
        json!({"exception_type": "ZeroDivisionError", "message": "division by zero", "stacktrace": [frame]}),
    );
    let request = Request::post("/")
        .header("X-Booboo-DSN", &h.key)
        .header("Content-Type", "application/json")
        .body(Body::from(serde_json::to_vec(&booboo).unwrap()))
        .unwrap();
    let answer = send(&h.state, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let booboo_id = answer.body["id"].as_str().unwrap().to_string();

    let a = h.state.store.event(ADMIN, &sentry_id).await.unwrap().unwrap();
    let b = h.state.store.event(ADMIN, &booboo_id).await.unwrap().unwrap();
    assert_eq!(a.issue_id, b.issue_id);
    assert_eq!(stored_event_count(&h).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_a_rate_limit_sentry_sdks_back_off_from() {
    let h = harness_with(Overrides { queue_capacity: Some(1), max_batch: Some(1), ..Overrides::default() }).await;
    // Hold SQLite's write lock so the writer stalls on its first batch.
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite:{}", h.db_path.display())).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut blocker).await.unwrap();
    let submit = |id: String| {
        let (state, key, p) = (h.state.clone(), h.key.clone(), h.project_id);
        tokio::spawn(async move {
            send(&state, post_envelope(p, &key).body(Body::from(event_envelope(&id))).unwrap()).await.status
        })
    };

    let first = submit(new_id());
    wait_for(|| h.state.metrics.render(h.state.writer.depth(), 1).contains("booboo_ingest_queue_depth 0")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = submit(new_id());
    wait_for(|| h.state.writer.depth() == 1).await;

    let answer =
        send(&h.state, post_envelope(h.project_id, &h.key).body(Body::from(event_envelope(&new_id()))).unwrap()).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(answer.headers["x-sentry-rate-limits"], "1::organization");
    assert_eq!(h.state.metrics.rejected_count("queue_full"), 1);

    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(second.await.unwrap(), StatusCode::OK);
}

async fn wait_for(condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

fn send_envelope(h: &Harness, body: Vec<u8>) -> impl std::future::Future<Output = Answer> + '_ {
    send(&h.state, post_envelope(h.project_id, &h.key).body(Body::from(body)).unwrap())
}

fn event_item(event: &Value) -> (Value, Vec<u8>) {
    (json!({"type": "event"}), serde_json::to_vec(event).unwrap())
}

#[tokio::test]
async fn a_sentry_event_is_cut_to_the_same_limits_as_the_booboo_protocol() {
    let h = harness().await;
    let id = new_id();
    let mut event = python_event(&id);
    let frames: Vec<Value> = (0..600)
        .map(|i| {
            let vars: serde_json::Map<String, Value> =
                if i == 599 { (0..300).map(|v| (format!("v{v}"), json!(v))).collect() } else { Default::default() };
            json!({"abs_path": "/srv/app/deep.py", "function": format!("f{i}"), "lineno": i + 1, "in_app": true, "vars": vars})
        })
        .collect();
    event["exception"]["values"][0]["stacktrace"]["frames"] = json!(frames);
    event["exception"]["values"][0]["value"] = json!("v".repeat(20_000));
    event["logentry"] = json!({"formatted": "m".repeat(20_000)});
    event["breadcrumbs"] =
        json!({"values": (0..5000).map(|i| json!({"message": format!("crumb {i}")})).collect::<Vec<_>>()});
    event["fingerprint"] = json!(vec!["p".repeat(2000); 100]);
    let answer = send_envelope(&h, envelope(json!({"event_id": id}), &[event_item(&event)])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let stored = stored_payload(&h, &id).await.unwrap();
    let crumbs = stored["breadcrumbs"].as_array().unwrap();
    assert_eq!(crumbs.len(), 100);
    assert_eq!(crumbs[0]["message"], "crumb 4900");
    for text in [&stored["message"], &stored["exceptions"][0]["value"]] {
        let text = text.as_str().unwrap();
        assert!(text.len() <= 8192 && text.ends_with('…'), "{} bytes", text.len());
    }
    let frames = stored["exceptions"][0]["stacktrace"].as_array().unwrap();
    assert_eq!(frames.len(), 250);
    assert_eq!((&frames[0]["function"], &frames[249]["function"]), (&json!("f0"), &json!("f599")));
    assert_eq!(frames[249]["vars"].as_object().unwrap().len(), 100);
    let parts = stored["fingerprint"].as_array().unwrap();
    assert_eq!(parts.len(), 32);
    assert!(parts.iter().all(|p| p.as_str().unwrap().len() <= 1024));
}

#[tokio::test]
async fn nested_secrets_from_sentry_sdks_are_filtered_before_storage() {
    let h = harness().await;
    let id = new_id();
    let mut event = python_event(&id);
    // What sentry-python sends: locals as nested JSON with repr'd keys.
    event["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"] =
        json!({"config": {"'db'": {"'password'": "'hunter2'", "'host'": "'db1'"}}, "qty": "0"});
    event["extra"] = json!({"job": {"args": [{"api_key": "hunter2"}], "queue": "default"}});
    event["contexts"] = json!({"payment": {"gateway": {"token": "hunter2", "name": "acme"}}});
    event["request"] = json!({"method": "POST", "url": "http://shop/pay",
                              "data": {"user": {"email": "a@b.c", "password": "hunter2"}}});
    let answer = send_envelope(&h, envelope(json!({"event_id": id}), &[event_item(&event)])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let event = h.state.store.event(ADMIN, &id).await.unwrap().unwrap();
    assert!(!event.payload.contains("hunter2"), "a secret was stored: {}", event.payload);
    let stored: Value = serde_json::from_str(&event.payload).unwrap();
    let vars = &stored["exceptions"][0]["stacktrace"][0]["vars"];
    assert_eq!(vars["config"], json!({"'db'": {"'password'": "[filtered]", "'host'": "'db1'"}}));
    assert_eq!(stored["extra"]["job"], json!({"args": [{"api_key": "[filtered]"}], "queue": "default"}));
    assert_eq!(stored["contexts"]["payment"]["gateway"], json!({"token": "[filtered]", "name": "acme"}));
    assert_eq!(stored["request"]["data"]["user"], json!({"email": "a@b.c", "password": "[filtered]"}));
}

#[tokio::test]
async fn envelope_events_without_an_id_of_their_own_are_each_stored() {
    let h = harness().await;
    let header_id = new_id();
    let mut first = python_event("");
    first.as_object_mut().unwrap().remove("event_id");
    let mut second = first.clone();
    second["exception"]["values"][0]["type"] = json!("KeyError");
    let body = envelope(json!({"event_id": header_id}), &[event_item(&first), event_item(&second)]);

    let answer = send_envelope(&h, body.clone()).await;
    assert_eq!((answer.status, answer.body.clone()), (StatusCode::OK, json!({ "id": header_id })));
    assert_eq!(stored_payload(&h, &header_id).await.unwrap()["exception_type"], "ZeroDivisionError");
    assert_eq!(stored_event_count(&h).await, 2);
    let page = Page { offset: 0, limit: 10 };
    let issues = h.state.store.list_issues(ADMIN, h.project_id, &Default::default(), page).await.unwrap();
    assert_eq!(issues.items.len(), 2);

    // The same envelope again (its answer was lost) stores nothing new.
    let answer = send_envelope(&h, body).await;
    assert_eq!((answer.status, answer.body.clone()), (StatusCode::OK, json!({ "id": header_id })));
    assert_eq!(stored_event_count(&h).await, 2);
}

#[tokio::test]
async fn a_header_only_envelope_claims_no_stored_id() {
    let h = harness().await;
    let id = new_id();
    let answer = send_envelope(&h, envelope(json!({"event_id": id, "sent_at": "2026-01-31T12:00:00Z"}), &[])).await;
    assert_eq!((answer.status, answer.body.clone()), (StatusCode::OK, json!({})));
    let with_session = envelope(json!({"event_id": id}), &[(json!({"type": "session"}), b"{}".to_vec())]);
    let answer = send_envelope(&h, with_session).await;
    assert_eq!((answer.status, answer.body.clone()), (StatusCode::OK, json!({})));
    assert!(stored_payload(&h, &id).await.is_none());
}

#[tokio::test]
async fn an_envelope_is_stored_whole_or_refused_whole() {
    let h = harness().await;
    let (first, second) = (new_id(), new_id());
    // The database refuses the second event (as a full disk or a broken
    // constraint would); the first must not be left behind alone.
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite:{}", h.db_path.display())).await.unwrap();
    sqlx::query(&format!(
        "CREATE TRIGGER refuse_second BEFORE INSERT ON events WHEN NEW.event_id = '{second}' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ))
    .execute(&mut db)
    .await
    .unwrap();
    let body = envelope(json!({}), &[event_item(&python_event(&first)), event_item(&python_event(&second))]);
    let answer = send_envelope(&h, body).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.body);
    assert!(stored_payload(&h, &first).await.is_none(), "the first event was stored without the second");
    assert_eq!(stored_event_count(&h).await, 0);

    sqlx::query("DROP TRIGGER refuse_second").execute(&mut db).await.unwrap();
    let body = envelope(json!({}), &[event_item(&python_event(&first)), event_item(&python_event(&second))]);
    assert_eq!(send_envelope(&h, body).await.status, StatusCode::OK);
    assert_eq!(stored_event_count(&h).await, 2);
}

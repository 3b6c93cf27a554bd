//! Ingestion through the router, without a socket, on a real SQLite store.

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use booboo_server::app::app;
use booboo_server::config::{Config, Overrides};
use booboo_server::group_commit::Writer;
use booboo_server::metrics::Metrics;
use booboo_server::state::AppState;
use booboo_server::store;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::Connection;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Harness {
    state: AppState,
    token: String,
    db_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn harness(queue_capacity: usize, max_batch: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("booboo.db");
    let config = Config::load(Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        queue_capacity: Some(queue_capacity),
        max_batch: Some(max_batch),
        ..Overrides::default()
    })
    .unwrap();
    let store = store::open(&config.database_url).await.unwrap();
    let token = format!("{:032x}", rand_u128());
    store.create_project("acme", "web", &token, T0).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(store.clone(), metrics.clone(), config.queue_capacity, config.max_batch);
    Harness {
        state: AppState { store, writer, metrics, config: Arc::new(config), mailer: None },
        token,
        db_path,
        _dir: dir,
    }
}

async fn post(state: &AppState, token: &str, body: &Value) -> (StatusCode, Option<String>, Value) {
    let request = Request::post("/")
        .header("X-Booboo-DSN", token)
        .header("Content-Type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, retry_after, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn ingest_answers_with_the_stored_event_id() {
    let h = harness(100, 10).await;
    let (status, _, body) = post(&h.state, &h.token, &body("pay", json!({"event_id": "ab".repeat(16)}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], "ab".repeat(16));
}

#[tokio::test]
async fn ingest_rejects_unknown_token() {
    let h = harness(100, 10).await;
    let (status, _, body) = post(&h.state, "ffffffffffffffffffffffffffffffff", &body("pay", json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].as_str().unwrap().contains("unknown"));
    assert_eq!(h.state.metrics.rejected_count("unknown_token"), 1);
}

/// A node remembers the keys it has seen (`ingest_keys.rs`); a key revoked
/// elsewhere (another node, the CLI: here a second store on the same file)
/// is still refused at once, by the writer's check of each batch's keys, and
/// the handshake, which stores nothing through the writer, checks it itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_elsewhere_is_refused_at_once_though_remembered() {
    let h = harness(100, 10).await;
    let (status, _, _) = post(&h.state, &h.token, &body("pay", json!({}))).await;
    assert_eq!(status, StatusCode::OK, "the key is now remembered");
    let (status, _, _) = post(&h.state, &h.token, &json!({"handshake": true, "sdk": "python/1.0"})).await;
    assert_eq!(status, StatusCode::OK);

    let elsewhere = store::open(&h.state.config.database_url).await.unwrap();
    let project = elsewhere.project_for(ADMIN, "acme", "web").await.unwrap().unwrap();
    let keys = elsewhere.project_keys(ADMIN, project.id).await.unwrap().unwrap();
    assert!(elsewhere.revoke_project_key(ADMIN, project.id, keys[0].id, T0).await.unwrap());

    let (status, _, answer) = post(&h.state, &h.token, &body("pay", json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("revoked"), "{answer}");
    let (status, _, _) = post(&h.state, &h.token, &json!({"handshake": true, "sdk": "python/1.0"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite:{}", h.db_path.display())).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&mut db).await.unwrap();
    assert_eq!(stored, 1, "nothing sent after the revocation was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_and_loses_nothing_it_accepted() {
    let h = harness(1, 1).await;
    // Hold SQLite's write lock so the writer stalls on its first batch.
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite:{}", h.db_path.display())).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut blocker).await.unwrap();

    let first = tokio::spawn({
        let (state, token) = (h.state.clone(), h.token.clone());
        async move { post(&state, &token, &body("first", json!({}))).await }
    });
    wait_for(|| h.state.metrics.render(h.state.writer.depth(), 1).contains("booboo_ingest_queue_depth 0")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = tokio::spawn({
        let (state, token) = (h.state.clone(), h.token.clone());
        async move { post(&state, &token, &body("second", json!({}))).await }
    });
    wait_for(|| h.state.writer.depth() == 1).await;

    let (status, retry_after, body) = post(&h.state, &h.token, &body("third", json!({}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(body["detail"].as_str().unwrap().contains("retry"));
    assert_eq!(h.state.metrics.rejected_count("queue_full"), 1);

    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    assert_eq!(second.await.unwrap().0, StatusCode::OK);
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

async fn stored_payload(h: &Harness, event_id: &str) -> (String, Value) {
    let event = h.state.store.event(ADMIN, event_id).await.unwrap().expect("the event is stored");
    let value = serde_json::from_str(&event.payload).unwrap();
    (event.payload, value)
}

#[tokio::test]
async fn an_accepted_event_is_cut_to_the_limits_keeping_what_matters() {
    let h = harness(100, 10).await;
    let frames: Vec<Value> = (0..600)
        .map(|i| {
            let vars: serde_json::Map<String, Value> =
                if i == 599 { (0..300).map(|v| (format!("v{v}"), json!("'x'"))).collect() } else { Default::default() };
            json!({"filename": "/srv/app/deep.py", "function": format!("f{i}"), "lineno": i + 1, "in_app": true, "vars": vars})
        })
        .collect();
    let crumbs: Vec<Value> = (0..5000).map(|i| json!({"category": "app", "message": format!("crumb {i}")})).collect();
    let event = body(
        "recurse",
        json!({
            "message": "m".repeat(20_000),
            "exception_type": "RecursionError",
            "exceptions": [{"type": "RecursionError", "value": "v".repeat(20_000), "chain_type": null, "stacktrace": frames}],
            "breadcrumbs": crumbs,
            "fingerprint": vec!["p".repeat(2000); 100],
        }),
    );
    let (status, _, answer) = post(&h.state, &h.token, &event).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, stored) = stored_payload(&h, answer["id"].as_str().unwrap()).await;

    let crumbs = stored["breadcrumbs"].as_array().unwrap();
    assert_eq!(crumbs.len(), 100);
    assert_eq!((&crumbs[0]["message"], &crumbs[99]["message"]), (&json!("crumb 4900"), &json!("crumb 4999")));
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
async fn secrets_nested_anywhere_are_filtered_before_storage() {
    let h = harness(100, 10).await;
    let frames = json!([{"filename": "/srv/app/views.py", "function": "pay", "lineno": 3, "in_app": true,
        "vars": {"settings": {"db": [{"host": "db1", "password": "hunter2"}]}, "count": "3"}}]);
    let event = body(
        "pay",
        json!({
            "stacktrace": frames,
            "context": {"service": {"name": "shop", "credentials": {"user": "svc", "key": "hunter2"}},
                        "deploy": {"steps": [{"auth": {"bearer": "hunter2"}}]}},
            "request": {"method": "POST", "url": "http://shop/pay", "data": {"card": {"number": "4", "Secret": "hunter2"}}},
            "custom_blob": {"nested": {"api_key": "hunter2", "kept": "visible"}},
        }),
    );
    let (status, _, answer) = post(&h.state, &h.token, &event).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (text, stored) = stored_payload(&h, answer["id"].as_str().unwrap()).await;
    assert!(!text.contains("hunter2"), "a secret was stored: {text}");
    let vars = &stored["exceptions"][0]["stacktrace"][0]["vars"];
    assert_eq!(vars["settings"], json!({"db": [{"host": "db1", "password": "[filtered]"}]}));
    assert_eq!(vars["count"], "3");
    assert_eq!(stored["contexts"]["service"]["credentials"], "[filtered]");
    assert_eq!(stored["contexts"]["service"]["name"], "shop");
    assert_eq!(stored["contexts"]["deploy"]["steps"][0]["auth"], "[filtered]");
    assert_eq!(stored["request"]["data"]["card"], json!({"number": "4", "Secret": "[filtered]"}));
    assert_eq!(stored["custom_blob"]["nested"], json!({"api_key": "[filtered]", "kept": "visible"}));
}

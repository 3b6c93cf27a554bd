//! Quotas and load shedding through the router, without a socket, on a real
//! SQLite store: a rate-limited project answers 200 and keeps counting, the
//! API says how many payloads were kept, `/metrics` counts the rest by
//! reason, and only a server that must shed load (here: free disk below
//! `--min-free-disk`) refuses, with Retry-After and Sentry's rate-limit header.

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use booboo_server::app::app;
use booboo_server::config::{Config, Overrides};
use booboo_server::group_commit::Writer;
use booboo_server::metrics::Metrics;
use booboo_server::state::AppState;
use booboo_server::store::RateLimit;
use booboo_server::{secrets, store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

struct Harness {
    state: AppState,
    token: String,
    api_token: String,
    project_id: i64,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Overrides { data_dir: Some(dir.path().to_path_buf()), ..Overrides::default() }).unwrap();
    let store = store::open(&config.database_url).await.unwrap();
    let token = format!("{:032x}", rand_u128());
    let (project, _) = store.create_project("acme", "web", &token, T0).await.unwrap();
    let admin = store.create_user("ann@example.com", &secrets::hash_password("pw-pw-pw-pw").unwrap(), true, T0).await;
    let api_token = secrets::new_api_token();
    store.create_api_token(admin.unwrap().id, &secrets::token_hash(&api_token), "test", T0).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(store.clone(), metrics.clone(), config.queue_capacity, config.max_batch);
    Harness {
        state: AppState { store, writer, metrics, config: Arc::new(config), mailer: None },
        token,
        api_token,
        project_id: project.id,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn send(state: &AppState, request: Request<Body>) -> Answer {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned();
    Answer { status, headers, body }
}

fn post_event(h: &Harness, function: &str, user: &str) -> Request<Body> {
    let event = body(function, json!({"context": {"user": {"id": user}}}));
    Request::post("/")
        .header("X-Booboo-DSN", &h.token)
        .header("Content-Type", "application/json")
        .body(Body::from(serde_json::to_vec(&event).unwrap()))
        .unwrap()
}

fn api_get(h: &Harness, path: &str) -> Request<Body> {
    Request::get(format!("/api/v1{path}"))
        .header("Authorization", format!("Bearer {}", h.api_token))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_rate_limited_project_answers_200_keeps_counting_and_says_what_it_kept() {
    let h = harness().await;
    crate::quota_store::set_quota(&h.state.store, h.project_id, Some(RateLimit { count: 2, seconds: 3600 }), false)
        .await;
    for i in 0..5 {
        let answer = send(&h.state, post_event(&h, "pay", &format!("u{i}"))).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let issues = send(&h.state, api_get(&h, "/projects/acme/web/issues")).await.json();
    let issue = &issues["items"][0];
    assert_eq!(issue["count"], 5);
    assert_eq!(issue["users"], 5);
    assert_eq!(issue["stored"], 2);
    assert_eq!(issue["not_stored"], json!({"rate_limit": 3, "retention": 0}));
    let detail = send(&h.state, api_get(&h, &format!("/issues/{}", issue["id"]))).await.json();
    assert_eq!((detail["count"].clone(), detail["stored"].clone()), (json!(5), json!(2)));
    let events = send(&h.state, api_get(&h, &format!("/issues/{}/events", issue["id"]))).await.json();
    assert_eq!(events["items"].as_array().unwrap().len(), 2);

    let metrics = send(&h.state, Request::get("/metrics").body(Body::empty()).unwrap()).await.body;
    assert!(metrics.contains("booboo_events_not_stored_total{reason=\"rate_limit\"} 3"), "{metrics}");
    assert!(metrics.contains("booboo_events_accepted_total 2"), "{metrics}");
    // Nothing was refused: a project's quota never sheds load.
    let health = send(&h.state, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(health.json().get("shedding").is_none(), "{}", health.body);
}

#[tokio::test]
async fn free_disk_below_the_minimum_refuses_with_retry_after_and_says_why() {
    let h = harness().await;
    // More free space than any disk has: the data directory is "low".
    h.state.metrics.shedding().watch_free_disk(h._dir.path(), u64::MAX);
    let refused = send(&h.state, post_event(&h, "pay", "u1")).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.body);
    assert_eq!(refused.headers.get("retry-after").unwrap(), "60");
    assert!(refused.json()["detail"].as_str().unwrap().contains("--min-free-disk"), "{}", refused.body);

    let envelope = format!(
        "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{{\"event_id\":\"{id}\",\"message\":\"boom\"}}\n",
        id = "ab".repeat(16)
    );
    let sentry = Request::post(format!("/api/{}/envelope/?sentry_key={}", h.project_id, h.token))
        .body(Body::from(envelope))
        .unwrap();
    let refused = send(&h.state, sentry).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.body);
    assert_eq!(refused.headers.get("retry-after").unwrap(), "60");
    assert_eq!(refused.headers.get("x-sentry-rate-limits").unwrap(), "60::organization");

    let health = send(&h.state, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json()["status"], "low disk");
    assert!(health.json()["detail"].as_str().unwrap().contains("--min-free-disk"), "{}", health.body);
    assert!(health.json()["since"].is_string());
    let metrics = send(&h.state, Request::get("/metrics").body(Body::empty()).unwrap()).await.body;
    assert!(metrics.contains("booboo_events_rejected_total{reason=\"low_disk\"} 2"), "{metrics}");
    let issues = send(&h.state, api_get(&h, "/projects/acme/web/issues")).await.json();
    assert_eq!(issues["items"].as_array().unwrap().len(), 0, "nothing refused was stored");
}

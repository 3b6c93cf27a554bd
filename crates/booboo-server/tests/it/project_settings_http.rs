//! `GET` and `PATCH /api/v1/projects/{org}/{project}` through the router, on
//! a real SQLite store: limits read and changed, bad input named, access kept.

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use booboo_server::app::app;
use booboo_server::config::{Config, Overrides};
use booboo_server::group_commit::Writer;
use booboo_server::metrics::Metrics;
use booboo_server::secrets;
use booboo_server::state::AppState;
use booboo_server::store::{self, Role};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

struct Harness {
    state: AppState,
    admin: String,
    member: String,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        default_retention_days: Some("30".into()),
        ..Overrides::default()
    })
    .unwrap();
    let store = store::open(&config.database_url).await.unwrap();
    store.create_project("acme", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap();
    store.create_project("other", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap();
    let mut tokens = Vec::new();
    for (email, role) in [("ann@example.com", Role::Admin), ("bob@example.com", Role::Member)] {
        let user = store.create_user(email, "h", false, T0).await.unwrap();
        store.set_membership("acme", user.id, role).await.unwrap();
        let token = secrets::new_api_token();
        store.create_api_token(user.id, &secrets::token_hash(&token), "test", T0).await.unwrap();
        tokens.push(token);
    }
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(store.clone(), metrics.clone(), config.queue_capacity, config.max_batch);
    let member = tokens.pop().unwrap();
    let admin = tokens.pop().unwrap();
    Harness {
        state: AppState { store, writer, metrics, config: Arc::new(config), mailer: None },
        admin,
        member,
        _dir: dir,
    }
}

async fn call(h: &Harness, method: &str, token: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(serde_json::to_vec(&b).unwrap())))
        .unwrap();
    let response = app(h.state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const WEB: &str = "/api/v1/projects/acme/web";

#[tokio::test]
async fn a_project_shows_its_own_and_effective_limits() {
    let h = harness().await;
    let (status, body) = call(&h, "GET", &h.member, WEB, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["slug"], "web");
    assert_eq!(body["max_events"], Value::Null);
    assert_eq!(body["retention_days"], Value::Null);
    assert_eq!(body["rate_limit"], Value::Null);
    assert_eq!(body["spike_guard"], false);
    assert_eq!(body["effective"]["max_events"], 100_000);
    assert_eq!(body["effective"]["retention_days"], 30, "the installation's --default-retention-days");
}

#[tokio::test]
async fn an_admin_patches_limits_and_null_goes_back_to_the_default() {
    let h = harness().await;
    let change = json!({"max_events": 1000, "retention_days": 7, "rate_limit": "100/min", "spike_guard": true});
    let (status, body) = call(&h, "PATCH", &h.admin, WEB, Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["max_events"], 1000);
    assert_eq!(body["retention_days"], 7);
    assert_eq!(body["rate_limit"], "100/min");
    assert_eq!(body["spike_guard"], true);
    assert_eq!(body["effective"]["max_events"], 1000);
    let (_, read) = call(&h, "GET", &h.member, WEB, None).await;
    assert_eq!(read["rate_limit"], "100/min");

    let (status, body) = call(&h, "PATCH", &h.admin, WEB, Some(json!({"max_events": null, "rate_limit": null}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["max_events"], Value::Null);
    assert_eq!(body["effective"]["max_events"], 100_000);
    assert_eq!(body["rate_limit"], Value::Null);
    assert_eq!(body["retention_days"], 7, "fields not named are left");
    assert_eq!(body["spike_guard"], true);
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field_and_changes_nothing() {
    let h = harness().await;
    for (change, field) in [
        (json!({"max_events": -5}), "max_events"),
        (json!({"max_events": 2_000_000_000i64}), "max_events"),
        (json!({"retention_days": 0}), "retention_days"),
        (json!({"retention_days": 36_501}), "retention_days"),
        (json!({"rate_limit": "lots"}), "rate_limit"),
        (json!({"spike_guard": "on"}), "spike_guard"),
        (json!({"max_events": 10, "colour": "red"}), "colour"),
    ] {
        let (status, body) = call(&h, "PATCH", &h.admin, WEB, Some(change.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{change}: {body}");
        assert!(body["detail"].as_str().unwrap().starts_with(field), "{change}: {body}");
    }
    let (_, read) = call(&h, "GET", &h.admin, WEB, None).await;
    assert_eq!(read["max_events"], Value::Null);
}

#[tokio::test]
async fn members_are_refused_and_unknown_or_foreign_projects_are_not_found() {
    let h = harness().await;
    let (status, body) = call(&h, "PATCH", &h.member, WEB, Some(json!({"max_events": 10}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for path in ["/api/v1/projects/acme/nope", "/api/v1/projects/other/web"] {
        let (status, _) = call(&h, "PATCH", &h.admin, path, Some(json!({"max_events": 10}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let (status, _) = call(&h, "GET", &h.admin, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

//! `PATCH /api/v1/issues/{id}` resolving in a release and ignoring with a
//! condition, through the router, on SQLite and (when
//! BOOBOO_TEST_DATABASE_URL names one) PostgreSQL: what is accepted, what is
//! refused with which message, and which later events reopen the issue.

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use booboo_server::app::app;
use booboo_server::config::{Config, Overrides};
use booboo_server::group_commit::Writer;
use booboo_server::metrics::Metrics;
use booboo_server::secrets;
use booboo_server::state::AppState;
use booboo_server::store::{Store, StoreOutcome};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

macro_rules! api_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _dir) = crate::support::sqlite_store().await;
                    super::$name(super::Api::new(store).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::support::postgres::TestDatabase::create().await else {
                        eprintln!("skipped: BOOBOO_TEST_DATABASE_URL is not set");
                        return;
                    };
                    super::$name(super::Api::new(db.store.clone()).await).await;
                    db.drop().await;
                }
            )*
        }
    };
}

api_tests!(
    resolving_in_the_next_release_keeps_old_releases_quiet,
    resolving_in_a_release_not_seen_yet_is_allowed_and_regresses_from_it_on,
    resolving_in_the_current_release_needs_a_release,
    bad_resolutions_are_refused_with_a_message,
    ignore_conditions_take_the_documented_shape,
);

struct Api {
    state: AppState,
    token: String,
    project_id: i64,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new(store: Arc<dyn Store>) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let config =
            Config::load(Overrides { data_dir: Some(dir.path().to_path_buf()), ..Overrides::default() }).unwrap();
        let (project, _) = store.create_project("acme", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap();
        let user = store.create_user("dev@example.com", "x", true, T0).await.unwrap();
        let token = secrets::new_api_token();
        store.create_api_token(user.id, &secrets::token_hash(&token), "test", T0).await.unwrap();
        let metrics = Arc::new(Metrics::default());
        let (writer, _task) = Writer::start(store.clone(), metrics.clone(), config.queue_capacity, config.max_batch);
        let state = AppState { store, writer, metrics, config: Arc::new(config), mailer: None };
        Api { state, token, project_id: project.id, _dir: dir }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty))
            .unwrap();
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn patch(&self, issue: i64, body: Value) -> (StatusCode, Value) {
        self.call("PATCH", &format!("/api/v1/issues/{issue}"), Some(body)).await
    }

    /// Stores an event of the `pay` issue from `release` and returns the
    /// issue as `GET /api/v1/issues/{id}` shows it.
    async fn event(&self, at: i64, release: &str) -> Value {
        let event = new_event(self.project_id, T0 + at, &body("pay", json!({"release": release})));
        let outcome = self.state.store.store_events(&[event]).await.unwrap();
        let StoreOutcome::Stored { issue_id } = outcome[0] else { panic!("{outcome:?}") };
        let (status, issue) = self.call("GET", &format!("/api/v1/issues/{issue_id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{issue}");
        issue
    }
}

fn id(issue: &Value) -> i64 {
    issue["id"].as_i64().unwrap()
}

async fn resolving_in_the_next_release_keeps_old_releases_quiet(api: Api) {
    api.event(0, "1.3.8").await;
    let issue = api.event(1, "1.3.9").await;
    let (status, resolved) = api.patch(id(&issue), json!({"status": "resolved", "resolved_in": "next_release"})).await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolved_in"], json!({"kind": "next_release", "release": "1.3.9"}));
    for (at, release) in [(2, "1.3.8"), (3, "1.3.9"), (4, "")] {
        let seen = api.event(at, release).await;
        assert_eq!((seen["status"].as_str(), seen["is_regression"].as_bool()), (Some("resolved"), Some(false)));
    }
    let seen = api.event(5, "1.4.0").await;
    assert_eq!((seen["status"].as_str(), seen["is_regression"].as_bool()), (Some("unresolved"), Some(true)));
    assert_eq!(seen["resolved_in"], Value::Null);
}

async fn resolving_in_a_release_not_seen_yet_is_allowed_and_regresses_from_it_on(api: Api) {
    let issue = api.event(0, "1.3.9").await;
    let (status, resolved) = api.patch(id(&issue), json!({"status": "resolved", "resolved_in": "1.4.0"})).await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["resolved_in"], json!({"kind": "release", "release": "1.4.0"}));
    assert_eq!(api.event(1, "1.4.0-rc.1").await["status"], "resolved");
    assert_eq!(api.event(2, "1.4.0").await["status"], "unresolved");
    // Plain resolve: the next event regresses it whatever its release, and
    // `"resolved_in": "now"` says the same.
    for body in [json!({"status": "resolved"}), json!({"status": "resolved", "resolved_in": "now"})] {
        let (status, resolved) = api.patch(id(&issue), body).await;
        assert_eq!((status, &resolved["resolved_in"]), (StatusCode::OK, &Value::Null));
        assert_eq!(api.event(3, "1.3.9").await["status"], "unresolved");
    }
}

async fn resolving_in_the_current_release_needs_a_release(api: Api) {
    let issue = api.event(0, "").await;
    let (status, answer) = api.patch(id(&issue), json!({"status": "resolved", "resolved_in": "current_release"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("no release yet"), "{answer}");
    api.event(1, "2.0.0").await;
    let (status, resolved) =
        api.patch(id(&issue), json!({"status": "resolved", "resolved_in": "current_release"})).await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["resolved_in"], json!({"kind": "current_release", "release": "2.0.0"}));
    assert_eq!(api.event(2, "").await["status"], "resolved");
    assert_eq!(api.event(3, "2.0.0").await["status"], "unresolved");
}

async fn bad_resolutions_are_refused_with_a_message(api: Api) {
    let issue = api.event(0, "1.0.0").await;
    let cases = [
        (json!({"status": "resolved", "resolved_in": ""}), "must not be empty"),
        (json!({"status": "resolved", "resolved_in": " 1.4.0"}), "must not start or end with spaces"),
        (json!({"status": "resolved", "resolved_in": 1.4}), "must be \"next_release\""),
        (json!({"status": "ignored", "resolved_in": "1.4.0"}), "applies only with \"status\": \"resolved\""),
        (json!({"status": "unresolved", "resolved_in": "next_release"}), "applies only"),
    ];
    for (body, message) in cases {
        let (status, answer) = api.patch(id(&issue), body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {answer}");
        assert!(answer["detail"].as_str().unwrap().contains(message), "{body} → {answer}");
    }
    let (status, _) = api.patch(999_999, json!({"status": "resolved", "resolved_in": "1.4.0"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, unchanged) = api.call("GET", &format!("/api/v1/issues/{}", id(&issue)), None).await;
    assert_eq!(unchanged["status"], "unresolved");
}

async fn ignore_conditions_take_the_documented_shape(api: Api) {
    let issue = api.event(0, "1.0.0").await;
    let (status, ignored) = api.patch(id(&issue), json!({"status": "ignored", "ignore": {"count": 2}})).await;
    assert_eq!(status, StatusCode::OK, "{ignored}");
    assert_eq!((ignored["status"].as_str(), ignored["ignore"]["until_count"].as_i64()), (Some("ignored"), Some(3)));
    assert_eq!(api.event(1, "1.0.0").await["status"], "ignored");
    assert_eq!(api.event(2, "1.0.0").await["status"], "unresolved");
    let (status, ignored) = api.patch(id(&issue), json!({"status": "ignored", "ignore": {"minutes": 60}})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ignored["ignore"]["until"].is_string(), "{ignored}");
    let (status, ignored) = api.patch(id(&issue), json!({"status": "ignored", "ignore": {"users": 10}})).await;
    assert_eq!((status, ignored["ignore"]["until_users"].as_i64()), (StatusCode::OK, Some(10)));
    let (status, answer) = api.patch(id(&issue), json!({"status": "ignored", "ignore": {"hours": 1}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    // Resolving forgets the ignore condition.
    let (_, resolved) = api.patch(id(&issue), json!({"status": "resolved", "resolved_in": "next_release"})).await;
    assert_eq!((resolved["status"].as_str(), &resolved["ignore"]), (Some("resolved"), &Value::Null));
}

//! `GET /api/v1/projects/{org}/{project}/issues?query=…` through the router:
//! the search language (`docs/search.md`), its 400s that name the bad term,
//! filtered counts and the total.

use crate::support::*;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use booboo_server::app::app;
use booboo_server::config::{Config, Overrides};
use booboo_server::group_commit::Writer;
use booboo_server::metrics::Metrics;
use booboo_server::state::AppState;
use booboo_server::{secrets, store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::Connection;
use std::sync::Arc;
use tower::ServiceExt;

struct Api {
    state: AppState,
    token: String,
    db_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A SQLite installation with one member (`ann@example.com`, an API token),
/// a project and three issues: `pay` (three events, two of them in
/// production, one in staging), `ship` (a warning) and `refund` (staging).
async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("booboo.db");
    let config = Config::load(Overrides { data_dir: Some(dir.path().to_path_buf()), ..Overrides::default() }).unwrap();
    let store = store::open(&config.database_url).await.unwrap();
    let (project, _) = store.create_project("acme", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap();
    let ann = store.create_user("ann@example.com", "x", false, T0).await.unwrap();
    store.set_membership("acme", ann.id, store::Role::Member).await.unwrap();
    let token = secrets::new_api_token();
    store.create_api_token(ann.id, &secrets::token_hash(&token), "test", T0).await.unwrap();
    let p = project.id;
    let hour = 3_600_000;
    store
        .store_events(&[
            new_event(p, T0, &body("pay", json!({"context": {"user": {"id": "u1"}}, "tags": {"browser": "chrome"}}))),
            new_event(p, T0 + hour, &body("pay", json!({"context": {"user": {"id": "u2"}}, "environment": "staging"}))),
            new_event(p, T0 + 2 * hour, &body("pay", json!({"release": "1.1"}))),
            new_event(p, T0 + 3 * hour, &body("ship", json!({"level": "warning"}))),
            new_event(p, T0 + 4 * hour, &body("refund", json!({"environment": "staging", "message": "card declined"}))),
        ])
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(store.clone(), metrics.clone(), 100, 10);
    Api {
        state: AppState { store, writer, metrics, config: Arc::new(config), mailer: None },
        token,
        db_path,
        _dir: dir,
    }
}

impl Api {
    async fn get(&self, params: &[(&str, &str)]) -> (StatusCode, Value) {
        let query = serde_urlencoded::to_string(params).unwrap();
        let request = Request::get(format!("/api/v1/projects/acme/web/issues?{query}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Body::empty())
            .unwrap();
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// The listed issues' functions, in order.
    async fn names(&self, query: &str) -> Vec<String> {
        let (status, body) = self.get(&[("query", query)]).await;
        assert_eq!(status, StatusCode::OK, "{query:?}: {body}");
        assert_eq!(body["total"].as_u64().unwrap() as usize, body["items"].as_array().unwrap().len(), "{query:?}");
        let mut names: Vec<String> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["culprit"].as_str().unwrap().split(' ').next().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}

#[tokio::test]
async fn the_grammar_through_the_api() {
    let api = api().await;
    let cases: &[(&str, &[&str])] = &[
        ("", &["pay", "refund", "ship"]),
        ("declined", &["refund"]),
        ("\"card declined\"", &["refund"]),
        ("level:warning", &["ship"]),
        ("level:>=error", &["pay", "refund"]),
        ("env:staging", &["pay", "refund"]),
        ("!environment:staging", &["pay", "ship"]),
        ("release:[1.1, 2.0]", &["pay"]),
        ("browser:chrome", &["pay"]),
        ("user.id:u2", &["pay"]),
        ("timesSeen:>2", &["pay"]),
        ("age:+1h", &["pay", "refund", "ship"]),
        ("firstSeen:-1h", &[]),
        ("lastSeen:>2026-01-01T03:30:00Z", &["refund"]),
        ("is:resolved", &[]),
        ("is:unassigned", &["pay", "refund", "ship"]),
        ("assigned:me", &[]),
    ];
    for (query, expected) in cases {
        assert_eq!(api.names(query).await, *expected, "{query:?}");
    }
}

#[tokio::test]
async fn filtered_counts_lifetime_and_total() {
    let api = api().await;
    let (status, body) = api.get(&[("query", "!env:staging"), ("sort", "count")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 2);
    assert_eq!(body["counts"], "counters");
    let pay = &body["items"][0];
    assert_eq!((pay["count"].as_i64(), pay["users"].as_i64()), (Some(2), Some(1)), "{pay}");
    assert_eq!(pay["lifetime"], json!({"count": 3, "users": 2}));

    let (_, body) = api.get(&[("query", "env:production release:1.1")]).await;
    assert_eq!(body["counts"], "stored_events");
    assert_eq!(body["items"][0]["count"], 1);

    // Pages keep the total; the cursor goes on.
    let (_, first) = api.get(&[("limit", "2")]).await;
    assert_eq!((first["items"].as_array().unwrap().len(), first["total"].as_i64()), (2, Some(3)));
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = api.get(&[("limit", "2"), ("cursor", &cursor)]).await;
    assert_eq!((second["items"].as_array().unwrap().len(), second["total"].as_i64()), (1, Some(3)));
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn status_and_assignment_terms() {
    let api = api().await;
    let (_, body) = api.get(&[("query", "level:warning")]).await;
    let ship = body["items"][0]["id"].as_i64().unwrap();
    let request = Request::patch(format!("/api/v1/issues/{ship}"))
        .header(header::AUTHORIZATION, format!("Bearer {}", api.token))
        .body(Body::from(r#"{"status": "resolved"}"#))
        .unwrap();
    assert_eq!(app(api.state.clone()).oneshot(request).await.unwrap().status(), StatusCode::OK);
    assert_eq!(api.names("").await, ["pay", "refund"], "unresolved only without is:");
    assert_eq!(api.names("is:resolved").await, ["ship"]);
    let (_, all) = api.get(&[("status", "all")]).await;
    assert_eq!(all["total"], 3);
    // An is: term wins over the older status parameter.
    let (_, resolved) = api.get(&[("status", "unresolved"), ("query", "is:resolved")]).await;
    assert_eq!(resolved["total"], 1);

    // Assigning is another feature's verb; the column is set directly here.
    let (_, body) = api.get(&[("query", "refund")]).await;
    let refund = body["items"][0]["id"].as_i64().unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", api.db_path.display())).await.unwrap();
    sqlx::query("UPDATE issues SET assignee_id = (SELECT id FROM users WHERE email = 'ann@example.com') WHERE id = ?")
        .bind(refund)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(api.names("assigned:me").await, ["refund"]);
    assert_eq!(api.names("assigned:Ann@Example.com").await, ["refund"]);
    assert_eq!(api.names("is:assigned").await, ["refund"]);
    assert_eq!(api.names("is:unassigned").await, ["pay"]);
    assert_eq!(api.names("!assigned:me").await, ["pay"]);
    assert!(api.names("assigned:bob@example.com").await.is_empty());
}

#[tokio::test]
async fn bad_queries_are_400s_that_name_the_term() {
    let api = api().await;
    let cases = [
        ("env:prod level:loud", "level:loud"),
        ("is:open", "is:open"),
        ("firstSeen:-3x", "firstSeen:-3x"),
        ("timesSeen:many", "timesSeen:many"),
        ("release:[1.0", "release:[1.0"),
        ("browser:\"chrome", "browser:\\\"chrome"),
        ("assigned:bob", "assigned:bob"),
        ("!pay", "!pay"),
        ("--", "--"),
    ];
    for (query, term) in cases {
        let (status, body) = api.get(&[("query", query)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("\"{term}\"")), "{query:?}: {detail}");
    }
    let (status, body) = api.get(&[("sort", "loudest")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("last_seen, first_seen, count or users"));
}

//! Envelopes captured from real SDKs (`@sentry/browser` 11.12 in Chromium,
//! the Rust `sentry` crate 0.49.5; see
//! `crates/booboo-core/tests/fixtures/sdk-capture/`) sent through the router
//! as the SDKs sent them, into a real SQLite store: the issues they make.

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use booboo_server::app::app;
use booboo_server::config::{Config, Overrides};
use booboo_server::group_commit::Writer;
use booboo_server::metrics::Metrics;
use booboo_server::state::AppState;
use booboo_server::store::{self, Issue, Page};
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;

/// Posts each captured envelope to a fresh project; returns its issues,
/// sorted by title (an issue is titled after its latest event).
async fn issues_from(captures: &[&str]) -> Vec<Issue> {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Overrides { data_dir: Some(dir.path().to_path_buf()), ..Overrides::default() }).unwrap();
    let store = store::open(&config.database_url).await.unwrap();
    let key = format!("{:032x}", rand_u128());
    let (project, _) = store.create_project("acme", "web", &key, T0).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(store.clone(), metrics.clone(), config.queue_capacity, config.max_batch);
    let state = AppState { store, writer, metrics, config: Arc::new(config), mailer: None };
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../booboo-core/tests/fixtures/sdk-capture/out");
    for name in captures {
        let body = std::fs::read(out.join(name)).unwrap();
        let request = Request::post(format!("/api/{}/envelope/", project.id))
            .header("X-Sentry-Auth", format!("Sentry sentry_key={key}, sentry_version=7"))
            .header("Content-Type", "text/plain;charset=UTF-8")
            .body(Body::from(body))
            .unwrap();
        let response = app(state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
    }
    let page = Page { offset: 0, limit: 100 };
    let mut issues = state.store.list_issues(ADMIN, project.id, &Default::default(), page).await.unwrap().items;
    issues.sort_by(|a, b| a.title.cmp(&b.title));
    issues
}

fn summary(issues: &[Issue]) -> Vec<(String, String, i64)> {
    issues.iter().map(|i| (i.title.clone(), i.culprit.clone(), i.count)).collect()
}

fn owned(rows: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
    rows.iter().map(|(t, c, n)| (t.to_string(), c.to_string(), *n)).collect()
}

#[tokio::test]
async fn browser_sdk_errors_in_one_function_are_separate_issues() {
    let names: Vec<String> = (0..8).map(|i| format!("browser-{i}.envelope")).collect();
    let issues = issues_from(&names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(
        summary(&issues),
        owned(&[
            ("RangeError: quantity 7 out of range", "checkout in app.js", 2),
            ("TypeError: Cannot read properties of null (reading 'items')", "checkout in app.js", 1),
            ("TypeError: Cannot read properties of undefined (reading '0')", "checkout in app.js", 1),
            ("browser message", "? in app.js", 1),
        ])
    );
}

#[tokio::test]
async fn rust_panics_blame_the_function_that_panicked() {
    let issues = issues_from(&["rust-0.envelope", "rust-1.envelope", "rust-2.envelope", "rust-3.envelope"]).await;
    assert_eq!(
        summary(&issues),
        owned(&[
            ("panic: attempt to divide by zero", "rustsdk::average in main.rs", 1),
            ("panic: too many values: 7", "rustsdk::average in main.rs", 2),
            ("rust message", "", 1),
        ])
    );
}

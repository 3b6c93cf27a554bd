//! How long the dashboard takes to render its pages on the server, for a
//! project with thousands of issues on SQLite, and how long the issue
//! search takes, filtered and not. Prints figures; asserts nothing about
//! time (a benchmark, not a test).
//!
//!     cargo bench -p booboo-server --bench dashboard [-- ISSUES [EVENTS_PER_ISSUE]]
//!
//! Without EVENTS_PER_ISSUE most issues have one event and every tenth has
//! twenty; with it every issue has that many (10000 100 is a million events).
//! With BOOBOO_BENCH_DATA=DIR the seeded database is kept in DIR and reused
//! by the next run.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use booboo_core::booboo_payload::{self, Payload};
use booboo_server::app::app;
use booboo_server::config::{Config, Overrides};
use booboo_server::group_commit::Writer;
use booboo_server::metrics::Metrics;
use booboo_server::state::AppState;
use booboo_server::store::{self, NewEvent, Session};
use booboo_server::{clock, secrets};
use http_body_util::BodyExt;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const ROUNDS: usize = 200;

/// Event `e` of issue `n`: environments, regions and releases vary by
/// event, so filters on them keep part of each issue's events.
fn event(project_id: i64, at: i64, n: usize, e: usize) -> NewEvent {
    let body = json!({
        "message": format!("failure number {n}"),
        "exception_type": "ValueError",
        "level": if n.is_multiple_of(7) { "warning" } else { "error" },
        "stacktrace": [{
            "filename": format!("/srv/app/module_{}.py", n % 50), "function": format!("handler_{n}"), "lineno": 10 + n % 90,
            "context_line": "raise ValueError(x)", "pre_context": ["def f(x):", "    y = x"], "post_context": [""],
            "vars": {"x": "42", "y": "'some text'"}, "in_app": true
        }],
        "exceptions": [], "context": {"user": {"id": format!("u{}", n % 300)}},
        "tags": {"runtime": "python", "region": if (n + e).is_multiple_of(2) { "eu" } else { "us" }},
        "environment": if (n + e).is_multiple_of(3) { "staging" } else { "production" },
        "release": format!("1.{}", (n + e) % 20),
    });
    let when = booboo_core::timestamp::from_unix_millis(at);
    let id = format!("{:032x}", (n as u128) << 64 | (e as u128) << 32 | (at as u128 & 0xffff_ffff));
    let Payload::Event(parsed) = booboo_payload::parse(&serde_json::to_vec(&body).unwrap(), when, &id).unwrap() else {
        unreachable!("an event body")
    };
    NewEvent::new(&Default::default(), project_id, at, at, booboo_core::process(*parsed))
}

fn main() {
    let numbers: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let issues = numbers.first().copied().unwrap_or(5_000);
    let per_issue = numbers.get(1).copied();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run(issues, per_issue));
}

async fn run(issues: usize, per_issue: Option<usize>) {
    // BOOBOO_BENCH_DATA keeps the seeded database between runs (seeding a
    // million events takes minutes): a directory that already holds one is
    // reused as it is, migrations and all; the arguments then only label it.
    let kept = std::env::var_os("BOOBOO_BENCH_DATA").map(std::path::PathBuf::from);
    let temporary = tempfile::tempdir().unwrap();
    let data_dir = kept.clone().unwrap_or_else(|| temporary.path().to_path_buf());
    let seeded = data_dir.join("booboo.db").exists();
    let config = Config::load(Overrides { data_dir: Some(data_dir), ..Overrides::default() }).unwrap();
    let opening = Instant::now();
    let store = store::open(&config.database_url).await.unwrap();
    let now = clock::now_millis();
    let (admin, project) = if seeded {
        println!("reusing the seeded database (opened and migrated in {:.1} s)", opening.elapsed().as_secs_f64());
        let admin = store.user_by_email("bench@example.com").await.unwrap().expect("a seeded database");
        let project = store.project_for(admin.viewer(), "acme", "web").await.unwrap().expect("a seeded project");
        (admin, project)
    } else {
        let admin = store.create_user("bench@example.com", "unused", true, 0).await.unwrap();
        let (project, _) = store.create_project("acme", "web", &secrets::new_ingest_token(), 0).await.unwrap();
        seed(&*store, project.id, issues, per_issue, now).await;
        // A running server refreshes its planner statistics every ten
        // minutes; a database seeded just now must not be timed without.
        store.refresh_planner_statistics().await.unwrap();
        (admin, project)
    };
    let token = secrets::new_session_token();
    let session = Session { user_id: admin.id, csrf_token: "x".into(), created_at: now, expires_at: now + 3_600_000 };
    store.create_session(&secrets::token_hash(&token), admin.id, &session).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(store.clone(), metrics.clone(), 100, 100);
    let state = AppState { store: store.clone(), writer, metrics, config: Arc::new(config), mailer: None };
    let cookie = format!("booboo_session={token}");
    let busy_issue = 1; // issue ids start at 1; the first issue has twenty events

    // The store reads behind the issue list, one by one, to see where the
    // page's time goes.
    let viewer = admin.viewer();
    let filter = store::IssueFilter { status: Some(store::IssueStatus::Unresolved), ..Default::default() };
    let window = store::Page { offset: 0, limit: 25 };
    let ids: Vec<i64> =
        store.list_issues(viewer, project.id, &filter, window).await.unwrap().items.iter().map(|i| i.id).collect();
    let since_hour = now / 3_600_000 - 23;
    println!("{:<34} {:>9} {:>9} {:>9}", "store read", "median", "p95", "max");
    let time_read = |name: &str, times: &mut Vec<Duration>| {
        times.sort();
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
        println!(
            "{:<34} {:>9} {:>9} {:>9}",
            name,
            ms(times[times.len() / 2]),
            ms(times[times.len() * 95 / 100]),
            ms(times[times.len() - 1])
        );
    };
    for name in ["list_issues (25)", "project_facets", "issue_hourly (25 issues)"] {
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let started = Instant::now();
            match name {
                "list_issues (25)" => drop(store.list_issues(viewer, project.id, &filter, window).await.unwrap()),
                "project_facets" => drop(store.project_facets(viewer, project.id).await.unwrap()),
                _ => drop(store.issue_hourly(viewer, project.id, &ids, since_hour).await.unwrap()),
            }
            times.push(started.elapsed());
        }
        time_read(name, &mut times);
    }
    // The search behind the issue list and the API: a page of 25 with its
    // total, counts and chart over the matching events.
    let searches = [
        ("search: none", "", store::IssueSort::LastSeen),
        ("search: env:staging", "env:staging", store::IssueSort::LastSeen),
        ("search: env:staging by count", "env:staging", store::IssueSort::Events),
        ("search: !env:production", "!env:production", store::IssueSort::LastSeen),
        ("search: region:eu (tag)", "region:eu", store::IssueSort::LastSeen),
        ("search: free text", "handler_999", store::IssueSort::LastSeen),
        ("search: level:>=error failure", "level:>=error failure", store::IssueSort::LastSeen),
        ("search: env:staging release:1.3", "env:staging release:1.3", store::IssueSort::LastSeen),
        ("search: env:staging by users", "env:staging", store::IssueSort::Users),
        ("search: user.id:u3", "user.id:u3", store::IssueSort::LastSeen),
        ("search: release:[1.3, 1.4] region:eu", "release:[1.3, 1.4] region:eu", store::IssueSort::LastSeen),
    ];
    let search_rounds = ROUNDS / 10;
    for (name, text, sort) in searches {
        let query = booboo_core::search_query::parse(text, now).unwrap();
        let search = store::IssueSearch { query, sort, any_status: false };
        let mut times = Vec::with_capacity(search_rounds);
        let mut total = 0;
        for _ in 0..search_rounds {
            let started = Instant::now();
            total = store.search_issues(viewer, project.id, &search, window, since_hour).await.unwrap().total;
            times.push(started.elapsed());
        }
        time_read(&format!("{name} ({total})"), &mut times);
    }

    let pages = [
        ("issue list, default", "/projects/acme/web".to_string()),
        ("issue list, page 40", "/projects/acme/web?page=40".to_string()),
        ("issue list, staging, by events", "/projects/acme/web?environment=staging&sort=events".to_string()),
        ("issue list, text search", "/projects/acme/web?query=handler_4999&status=all".to_string()),
        ("issue list, query env:staging", "/projects/acme/web?query=env%3Astaging".to_string()),
        ("issue list, query region:eu", "/projects/acme/web?query=region%3Aeu&sort=events".to_string()),
        ("issue page", format!("/issues/{busy_issue}")),
        ("project setup page", "/projects/acme/web/setup".to_string()),
        ("projects", "/projects".to_string()),
    ];
    println!("{:<34} {:>9} {:>9} {:>9} {:>9}", "page", "median", "p95", "max", "bytes");
    for (name, path) in pages {
        let mut times = Vec::with_capacity(ROUNDS);
        let mut bytes = 0;
        for _ in 0..ROUNDS {
            let request = Request::get(&path).header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
            let started = Instant::now();
            let response = app(state.clone()).oneshot(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            times.push(started.elapsed());
            assert_eq!(status, StatusCode::OK, "{path}: {}", String::from_utf8_lossy(&body));
            bytes = body.len();
        }
        times.sort();
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
        println!(
            "{:<34} {:>9} {:>9} {:>9} {:>9}",
            name,
            ms(times[ROUNDS / 2]),
            ms(times[ROUNDS * 95 / 100]),
            ms(times[ROUNDS - 1]),
            bytes
        );
    }
}

/// Stores the bench's issues and events through the store's batch writer.
async fn seed(store: &dyn store::Store, project_id: i64, issues: usize, per_issue: Option<usize>, now: i64) {
    let started = Instant::now();
    let mut batch = Vec::new();
    let mut stored = 0;
    for n in 0..issues {
        // Most issues have one event; every tenth has twenty, spread over a
        // day (unless EVENTS_PER_ISSUE says how many each has, spread over
        // a week).
        let events = per_issue.unwrap_or(if n.is_multiple_of(10) { 20 } else { 1 });
        let spacing = if per_issue.is_some() { 7 * 24 * 3_600_000 / events.max(1) as i64 } else { 3_600_000 };
        for e in 0..events {
            batch.push(event(project_id, now - (e as i64 * spacing) - n as i64, n, e));
        }
        if batch.len() >= 1_000 {
            stored += batch.len();
            store.store_events(&std::mem::take(&mut batch)).await.unwrap();
        }
    }
    stored += batch.len();
    store.store_events(&batch).await.unwrap();
    println!("seeded {issues} issues ({stored} events) in {:.1} s", started.elapsed().as_secs_f64());
}

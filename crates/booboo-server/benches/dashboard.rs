//! How long the dashboard takes to render its pages on the server, for a
//! project with thousands of issues on SQLite, and how long the issue
//! search takes, filtered and not. Prints figures; asserts nothing about
//! time (a benchmark, not a test).
//!
//!     cargo bench -p booboo-server --bench dashboard [-- ISSUES [EVENTS_PER_ISSUE]]
//!
//! Without EVENTS_PER_ISSUE most issues have one event and every tenth has
//! twenty; with it every issue has that many (10000 100 is a million events;
//! 345000 3 is 345,000 issues). Every twentieth issue is then ignored and
//! every tenth resolved, so each status filter lists something. With
//! BOOBOO_BENCH_DATA=DIR the seeded database is kept in DIR and reused by
//! the next run.
//!
//! Each issue list (every sort under every status, and the list's filters,
//! as the dashboard's page and as the API's list) and the issue and event
//! pages are timed warm, and cold: with fresh connections and the database
//! file's pages dropped from the kernel's page cache (`posix_fadvise`).
//! BOOBOO_BENCH_ONLY=PATH times that one request alone, for a profiler.

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
    let config = Config::load(Overrides { data_dir: Some(data_dir.clone()), ..Overrides::default() }).unwrap();
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
    let resolved = booboo_core::search_query::parse("is:resolved", now).unwrap();
    let resolved = store::IssueSearch { query: resolved, ..Default::default() };
    let one = store::Page { offset: 0, limit: 1 };
    if store.search_issues(admin.viewer(), project.id, &resolved, one, 0).await.unwrap().hits.items.is_empty() {
        mark_statuses(&*store, admin.viewer(), issues as i64).await;
        store.refresh_planner_statistics().await.unwrap();
    }
    let token = secrets::new_session_token();
    let session = Session { user_id: admin.id, csrf_token: "x".into(), created_at: now, expires_at: now + 3_600_000 };
    store.create_session(&secrets::token_hash(&token), admin.id, &session).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(store.clone(), metrics.clone(), 100, 100);
    let state = AppState { store: store.clone(), writer, metrics, config: Arc::new(config), mailer: None };
    let cookie = format!("booboo_session={token}");
    let api_token = secrets::new_api_token();
    store.create_api_token(admin.id, &secrets::token_hash(&api_token), "bench", now).await.unwrap();
    let busy_issue = 1; // issue ids start at 1; the first issue has twenty events
    let busy_event =
        store.issue_event(admin.viewer(), busy_issue, None).await.unwrap().expect("an event").event.event_id;

    // BOOBOO_BENCH_ONLY=PATH times that one request, 500 times warm, for a
    // profiler to watch.
    if let Ok(path) = std::env::var("BOOBOO_BENCH_ONLY") {
        time_request(&state, &cookie, &api_token, &path, 500, &data_dir).await.print(&path);
        return;
    }

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
        let mut total = String::new();
        for _ in 0..search_rounds {
            let started = Instant::now();
            let found = store.search_issues(viewer, project.id, &search, window, since_hour).await.unwrap();
            total = format!("{}{}", found.total, if found.total_exact { "" } else { "+" });
            times.push(started.elapsed());
        }
        time_read(&format!("{name} ({total})"), &mut times);
    }

    let list_pages = list_matrix(&state, &cookie, &api_token, &data_dir).await;
    let single = [
        ("issue page", format!("/issues/{busy_issue}")),
        ("event page", format!("/issues/{busy_issue}/events/{busy_event}")),
        ("API issue", format!("/api/v1/issues/{busy_issue}")),
        ("API issue's events (50)", format!("/api/v1/issues/{busy_issue}/events")),
        ("API event", format!("/api/v1/events/{busy_event}")),
        ("project setup page", "/projects/acme/web/setup".to_string()),
        ("projects", "/projects".to_string()),
    ];
    println!("{:<44} {:>9} {:>9} {:>9} {:>9} {:>9}", "page", "median", "p95", "max", "cold", "bytes");
    for (name, path) in single {
        let timed = time_request(&state, &cookie, &api_token, &path, ROUNDS, &data_dir).await;
        timed.print(name);
    }
    println!(
        "{} issue lists and API lists timed; the slowest warm median {:.2} ms, the slowest cold median {:.2} ms",
        list_pages.len(),
        list_pages.iter().map(|t| t.median_ms()).fold(0.0, f64::max),
        list_pages.iter().map(|t| t.cold_median_ms()).fold(0.0, f64::max)
    );
}

/// Warm runs of each issue list, and runs with a cold page cache.
const LIST_ROUNDS: usize = 20;
const COLD_ROUNDS: usize = 3;

/// A request's server times: warm runs sorted, and cold runs sorted.
struct Timed {
    warm: Vec<Duration>,
    cold: Vec<Duration>,
    bytes: usize,
}

impl Timed {
    fn median_ms(&self) -> f64 {
        self.warm[self.warm.len() / 2].as_secs_f64() * 1000.0
    }

    fn cold_median_ms(&self) -> f64 {
        self.cold[self.cold.len() / 2].as_secs_f64() * 1000.0
    }

    fn print(&self, name: &str) {
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
        let n = self.warm.len();
        println!(
            "{:<44} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            ms(self.warm[n / 2]),
            ms(self.warm[n * 95 / 100]),
            ms(self.warm[n - 1]),
            ms(self.cold[self.cold.len() / 2]),
            self.bytes
        );
    }
}

/// Every sort under every status, and the list's filters, as the
/// dashboard's issue list and as the API's: warm and cold.
async fn list_matrix(state: &AppState, cookie: &str, api_token: &str, data_dir: &std::path::Path) -> Vec<Timed> {
    let mut queries = Vec::new();
    for status in ["unresolved", "resolved", "ignored", "all"] {
        for sort in ["last_seen", "first_seen", "events", "users"] {
            queries.push(format!("status={status}&sort={sort}"));
        }
    }
    for sort in ["last_seen", "first_seen", "events", "users"] {
        queries.push(format!("environment=staging&sort={sort}"));
    }
    queries.push("release=1.3".to_string());
    queries.push("level=error".to_string());
    queries.push("status=all&level=warning&sort=events".to_string());
    queries.push("page=40".to_string());
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "issue list (25) / API list (50)", "median", "p95", "max", "cold", "bytes"
    );
    let mut all = Vec::new();
    for query in &queries {
        for (kind, path) in [
            ("page", format!("/projects/acme/web?{query}")),
            ("API", format!("/api/v1/projects/acme/web/issues?{}", query.replace("page=40", "cursor=975"))),
        ] {
            let timed = time_request(state, cookie, api_token, &path, LIST_ROUNDS, data_dir).await;
            timed.print(&format!("{kind} {query}"));
            all.push(timed);
        }
    }
    all
}

/// Times one GET through the whole router (the server's time, no socket):
/// `rounds` times warm, then `COLD_ROUNDS` times each with a cold page
/// cache: fresh connections (an empty SQLite page cache) and the database
/// file's pages dropped from the kernel's page cache.
async fn time_request(
    state: &AppState,
    cookie: &str,
    api_token: &str,
    path: &str,
    rounds: usize,
    data_dir: &std::path::Path,
) -> Timed {
    let request = |state: AppState| async move {
        let mut request = Request::get(path);
        request = if path.starts_with("/api/") {
            request.header(header::AUTHORIZATION, format!("Bearer {api_token}"))
        } else {
            request.header(header::COOKIE, cookie)
        };
        let started = Instant::now();
        let response = app(state).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let took = started.elapsed();
        assert_eq!(status, StatusCode::OK, "{path}: {}", String::from_utf8_lossy(&body));
        (took, body.len())
    };
    let mut warm = Vec::with_capacity(rounds);
    let mut bytes = 0;
    request(state.clone()).await; // not timed: the first run warms the cache
    for _ in 0..rounds {
        let (took, len) = request(state.clone()).await;
        warm.push(took);
        bytes = len;
    }
    let mut cold = Vec::with_capacity(COLD_ROUNDS);
    for _ in 0..COLD_ROUNDS {
        let store = store::open(&state.config.database_url).await.unwrap();
        evict_from_page_cache(data_dir);
        let (took, _) = request(AppState { store, ..state.clone() }).await;
        cold.push(took);
    }
    warm.sort();
    cold.sort();
    Timed { warm, cold, bytes }
}

/// Drops the database's pages from the kernel's page cache, this file's
/// alone (`posix_fadvise(DONTNEED)` after writing back what is dirty), so
/// the next reads come from the disk without disturbing anything else on
/// the machine (as `echo 3 > /proc/sys/vm/drop_caches` would).
fn evict_from_page_cache(data_dir: &std::path::Path) {
    use std::os::fd::AsRawFd;
    for name in ["booboo.db", "booboo.db-wal"] {
        let Ok(file) = std::fs::File::open(data_dir.join(name)) else { continue };
        file.sync_data().unwrap();
        // SAFETY: a plain system call on a descriptor this function owns.
        let failed = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(failed, 0, "posix_fadvise on {name}");
    }
}

/// Resolves every tenth issue and ignores every twentieth (the seeder
/// leaves them all unresolved), so the status filters list something; done
/// once per database.
async fn mark_statuses(store: &dyn store::Store, viewer: store::Viewer, issues: i64) {
    let started = Instant::now();
    for id in 1..=issues {
        let status = match id % 20 {
            5 | 15 => store::IssueStatus::Resolved,
            7 => store::IssueStatus::Ignored,
            _ => continue,
        };
        store.set_issue_status(viewer, id, status).await.unwrap();
    }
    println!("resolved and ignored some of {issues} issues in {:.1} s", started.elapsed().as_secs_f64());
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

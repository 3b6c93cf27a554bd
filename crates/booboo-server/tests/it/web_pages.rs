//! The dashboard through the router, without a socket, on a seeded SQLite
//! store: every page renders (so a broken template fails here), forms need
//! their CSRF token, another organisation's ids answer 404, and whatever an
//! event carries is escaped.

use crate::support::*;
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use booboo_server::app::app;
use booboo_server::config::{Config, Overrides};
use booboo_server::group_commit::Writer;
use booboo_server::metrics::Metrics;
use booboo_server::state::AppState;
use booboo_server::store::{self, IssueStatus, Role, Store, StoreOutcome};
use booboo_server::{clock, secrets};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

pub(crate) const PASSWORD: &str = "correct horse battery";

pub(crate) struct Site {
    state: AppState,
    pub(crate) store: Arc<dyn Store>,
    /// Issue ids and one event id of each, in acme/web and in other/api.
    pub(crate) mine: Vec<i64>,
    pub(crate) my_event: String,
    theirs: i64,
    their_event: String,
    their_key: i64,
    their_token: String,
    _dir: tempfile::TempDir,
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    /// The body with HTML's character references decoded, for reading text.
    pub(crate) fn text(&self) -> String {
        self.body
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    pub(crate) fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }
}

/// Someone with a browser: the cookies they hold.
#[derive(Clone, Default)]
pub(crate) struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn keep(&mut self, answer: &Answer) {
        for set in answer.headers.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(n, _)| n != name);
                if !value.is_empty() {
                    self.cookies.push((name.to_string(), value.to_string()));
                }
            }
        }
    }

    fn header(&self) -> String {
        self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }
}

/// The value of the first `name="csrf"` field of a page.
pub(crate) fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("the page has a form with a CSRF token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

impl Site {
    async fn request(&self, browser: &mut Browser, request: Request<Body>) -> Answer {
        let mut request = request;
        if !browser.cookies.is_empty() {
            request.headers_mut().insert(header::COOKIE, browser.header().parse().unwrap());
        }
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned();
        let answer = Answer { status, headers, body };
        browser.keep(&answer);
        answer
    }

    pub(crate) async fn get(&self, browser: &mut Browser, path: &str) -> Answer {
        self.request(browser, Request::get(path).body(Body::empty()).unwrap()).await
    }

    pub(crate) async fn post(&self, browser: &mut Browser, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.request(browser, request).await
    }

    /// Signs in through the sign-in form, as a browser does.
    pub(crate) async fn sign_in(&self, email: &str) -> (Browser, String) {
        let mut browser = Browser::default();
        let form = self.get(&mut browser, "/signin").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = csrf_of(&form.body);
        let answer =
            self.post(&mut browser, "/signin", &[("csrf", &csrf), ("email", email), ("password", PASSWORD)]).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        let page = self.get(&mut browser, "/settings").await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = csrf_of(&page.body);
        (browser, csrf)
    }
}

fn hostile_event() -> Value {
    let script = "<script>alert('x')</script>";
    let img = "\"><img src=x onerror=alert(1)>";
    json!({
        "message": format!("bad {script} {img}"),
        "exception_type": "ValueError",
        "stacktrace": [{
            "filename": format!("/srv/{img}.py"), "function": script, "lineno": 3,
            "context_line": script, "pre_context": [img], "post_context": ["javascript:alert(2)"],
            "vars": {script: img, "link": "javascript:alert(3)"}, "in_app": true
        }],
        "tags": {script: img},
        "environment": img,
        "release": script,
        "context": {"user": {"email": img, "id": script}},
        "request": {"method": "GET", "url": "javascript:alert(4)", "headers": {"X-Evil": script}, "query_string": img},
        "breadcrumbs": [{"category": script, "message": img, "level": "info", "timestamp": 1767225600}],
        "logger": script,
        "logentry": {"message": format!("logged {img}"), "params": [script], "formatted": format!("logged {script}")},
    })
}

async fn site_with(public_url: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        public_url: Some(public_url.into()),
        ..Overrides::default()
    })
    .unwrap();
    let store = store::open(&config.database_url).await.unwrap();
    let hash = secrets::hash_password(PASSWORD).unwrap();
    let ann = store.create_user("ann@example.com", &hash, false, T0).await.unwrap();
    let bob = store.create_user("bob@example.com", &hash, false, T0).await.unwrap();
    let eve = store.create_user("eve@example.com", &hash, false, T0).await.unwrap();
    let (mine, _) =
        store.create_project_for(ann.viewer(), "acme", "web", "0123456789abcdef0123456789abcdef", T0).await.unwrap();
    store.set_membership("acme", bob.id, Role::Member).await.unwrap();
    let (theirs, their_key) =
        store.create_project_for(eve.viewer(), "other", "api", "fedcba9876543210fedcba9876543210", T0).await.unwrap();
    let now = clock::now_millis();
    let mut batch = vec![
        new_event(
            mine.id,
            now - 7_200_000,
            &body(
                "checkout",
                json!({
                    "exceptions": [
                        {"type": "RuntimeError", "value": "cannot check out", "chain_type": null, "stacktrace": [
                            {"filename": "/srv/app/shop.py", "function": "checkout", "lineno": 40,
                             "context_line": "raise RuntimeError('cannot check out') from exc",
                             "pre_context": ["try:", "    load()"], "post_context": [],
                             "vars": {"cart": "{'apple': 3}", "qty": "0"}, "in_app": true}]},
                        {"type": "KeyError", "value": "'db'", "chain_type": "cause", "stacktrace": [
                            {"filename": "/usr/lib/python3.12/site-packages/lib.py", "function": "get",
                             "lineno": 7, "context_line": "return d[k]", "pre_context": [], "post_context": [],
                             "vars": {}, "in_app": false}]}
                    ],
                    "exception_type": "RuntimeError", "message": "cannot check out",
                    "request": {"method": "POST", "url": "https://shop.example.com/cart", "headers": {"User-Agent": "curl"}, "query_string": "a=1"},
                    "context": {"user": {"id": "u1", "email": "u1@example.com"}, "sdk": {"name": "booboo-sdk", "version": "1.0"}, "runtime": {"name": "CPython", "version": "3.12"}},
                    "environment": "production", "release": "1.0.0", "tags": {"region": "eu"},
                }),
            ),
        ),
        new_event(mine.id, now - 60_000, &body("checkout", json!({"environment": "staging", "release": "1.0.1"}))),
        new_event(mine.id, now - 30_000, &body("ship", json!({"environment": "staging", "level": "warning"}))),
        new_event(mine.id, now - 10_000, &hostile_event()),
        new_event(theirs.id, now, &body("secret", json!({}))),
    ];
    // A message event with no stack at all.
    batch.push(new_event(
        mine.id,
        now - 5_000,
        &json!({"message": "disk almost full", "exception_type": "", "level": "info", "stacktrace": [], "exceptions": [], "context": {}, "tags": {}, "environment": "production", "release": ""}),
    ));
    let outcomes = store.store_events(&batch).await.unwrap();
    let ids: Vec<i64> = outcomes
        .iter()
        .map(|o| match o {
            StoreOutcome::Stored { issue_id } => *issue_id,
            other => panic!("{other:?}"),
        })
        .collect();
    let token = secrets::new_api_token();
    store.create_api_token(eve.id, &secrets::token_hash(&token), "eve's", T0).await.unwrap();
    let their_token_id = store.api_tokens_of(eve.id).await.unwrap()[0].id;
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(store.clone(), metrics.clone(), config.queue_capacity, config.max_batch);
    Site {
        state: AppState { store: store.clone(), writer, metrics, config: Arc::new(config), mailer: None },
        store,
        mine: vec![ids[0], ids[2], ids[3], ids[5]],
        my_event: batch[0].processed.event.event_id.clone(),
        theirs: ids[4],
        their_event: batch[4].processed.event.event_id.clone(),
        their_key: their_key.id,
        their_token: their_token_id.to_string(),
        _dir: dir,
    }
}

pub(crate) async fn site() -> Site {
    site_with("http://127.0.0.1:8000").await
}

fn assert_security_headers(answer: &Answer) {
    let csp = answer.headers.get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(answer.headers.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
    assert_eq!(answer.headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
}

#[tokio::test]
async fn every_page_renders_for_a_signed_in_member() {
    let site = site().await;
    let (mut ann, _) = site.sign_in("ann@example.com").await;
    let [checkout, ship, hostile, message] = site.mine[..] else { panic!() };
    let pages: Vec<(String, Vec<&str>)> = vec![
        ("/projects".into(), vec!["acme", "web", "Create a project"]),
        ("/projects/acme/web".into(), vec!["RuntimeError: cannot check out", "Last 24 hours"]),
        ("/projects/acme/web?status=all&sort=events&environment=staging&level=warning&query=ship".into(), vec!["ship"]),
        ("/projects/acme/web?release=1.0.1&page=1".into(), vec!["checkout in views.py"]),
        ("/projects/acme/web?page=2".into(), vec!["No issues match"]),
        (
            "/projects/acme/web/setup".into(),
            vec![
                "http://0123456789abcdef0123456789abcdef@127.0.0.1:8000/acme/web",
                "Django",
                "Flask",
                "FastAPI",
                "Last event",
            ],
        ),
        (
            format!("/issues/{checkout}"),
            vec![
                "RuntimeError",
                "cannot check out",
                "The above exception was the direct cause of the following exception:",
                "KeyError",
                "/srv/app/shop.py",
                "{'apple': 3}",
                "error-line",
                "1 library frame",
                "https://shop.example.com/cart",
                "u1@example.com",
                "CPython 3.12",
                "booboo-sdk 1.0",
                "First seen",
                "1.0.0",
                "Last 30 days",
                "region",
            ],
        ),
        (format!("/issues/{checkout}/events/{}", site.my_event), vec!["Newer →", "production", "Raw JSON"]),
        (format!("/issues/{ship}"), vec!["warning"]),
        (format!("/issues/{hostile}"), vec!["Breadcrumbs"]),
        (format!("/issues/{message}"), vec!["disk almost full"]),
        ("/settings".into(), vec!["API tokens", "Change password", "acme"]),
        ("/settings/orgs/acme".into(), vec!["bob@example.com", "Add a member"]),
    ];
    for (path, expected) in pages {
        let answer = site.get(&mut ann, &path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        assert_security_headers(&answer);
        for text in expected {
            assert!(answer.text().contains(text), "{path} should show {text:?}");
        }
    }
    // The first-seen section names the release it first appeared in.
    let issue = site.get(&mut ann, &format!("/issues/{checkout}")).await.body;
    assert!(issue.contains("in release <code>1.0.0</code>"));
    let status = site.get(&mut ann, "/projects/acme/web/status").await;
    assert_eq!(serde_json::from_str::<Value>(&status.body).unwrap()["state"], "receiving");
    let raw = site.get(&mut ann, &format!("/issues/{checkout}/events/{}/json", site.my_event)).await;
    assert_eq!(raw.headers.get(header::CONTENT_TYPE).unwrap(), "application/json");
    assert_eq!(serde_json::from_str::<Value>(&raw.body).unwrap()["id"], site.my_event);
    for file in ["booboo.css", "booboo.js", "favicon.svg"] {
        let answer = site.get(&mut ann, &format!("/static/{file}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{file}");
    }
    assert_eq!(site.get(&mut ann, "/static/../Cargo.toml").await.status, StatusCode::NOT_FOUND);
    let missing = site.get(&mut ann, "/no/such/page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.text().contains("No such page"));
    assert_security_headers(&missing);
    assert_eq!(site.get(&mut ann, "/").await.location(), "/projects");
}

#[tokio::test]
async fn what_an_event_carries_is_escaped() {
    let site = site().await;
    let (mut ann, _) = site.sign_in("ann@example.com").await;
    let hostile = site.mine[2];
    for path in [format!("/issues/{hostile}"), "/projects/acme/web?status=all".to_string()] {
        let page = site.get(&mut ann, &path).await.body;
        assert!(!page.contains("<script>alert"), "{path}: a script from an event reached the page");
        assert!(!page.contains("<img src=x"), "{path}: markup from an event reached the page");
        assert!(page.contains("&lt;script&gt;alert"), "{path}: the text is shown, escaped");
        assert!(!page.contains("href=\"javascript:"), "{path}");
    }
    // The log record's logger, message, template and arguments are shown, escaped.
    let page = site.get(&mut ann, &format!("/issues/{hostile}")).await.body;
    let record = &page[page.find("Log record").expect("the log record is shown")..];
    let record = &record[..record.find("</section>").unwrap()];
    for shown in ["Logger", "Template", "Arguments", "logged &lt;script&gt;alert", "logged &quot;&gt;&lt;img"] {
        assert!(record.contains(shown), "{shown} missing from the log record: {record}");
    }
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_sign_in_and_come_back() {
    let site = site().await;
    let mut visitor = Browser::default();
    let answer = site.get(&mut visitor, "/projects/acme/web?status=all").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/signin?next=%2Fprojects%2Facme%2Fweb%3Fstatus%3Dall");
    assert_eq!(site.get(&mut visitor, "/").await.location(), "/signin");
    let form = site.get(&mut visitor, "/signin?next=/projects/acme/web").await;
    let csrf = csrf_of(&form.body);
    let answer = site
        .post(
            &mut visitor,
            "/signin",
            &[("csrf", &csrf), ("email", "ANN@example.com"), ("password", PASSWORD), ("next", "/projects/acme/web")],
        )
        .await;
    assert_eq!(answer.location(), "/projects/acme/web");
    let cookie = answer.cookie("booboo_session").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"), "{cookie}");
    // A sign-in never sends anyone to another site, and characters that
    // cannot go into a header give the default rather than a 500.
    let (mut bob, _) = site.sign_in("bob@example.com").await;
    for next in ["//evil.example.com", "/%09/evil.example.com", "/%5C/evil.example.com", "/%0d%0a/x", "/%C3%A9"] {
        let answer = site.get(&mut bob, &format!("/signin?next={next}")).await;
        assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/projects"), "{next}");
    }
    let mut stranger = Browser::default();
    let csrf = csrf_of(&site.get(&mut stranger, "/signin").await.body);
    for next in ["/\t/evil.example.com", "/\r\n/evil.example.com", "/\\/evil.example.com"] {
        let fields = [("csrf", csrf.as_str()), ("email", "bob@example.com"), ("password", PASSWORD), ("next", next)];
        let answer = site.post(&mut stranger.clone(), "/signin", &fields).await;
        assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/projects"), "{next:?}");
    }
    // The `back` of an issue action likewise.
    let issue = site.mine[0];
    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    for back in ["/\t/evil.example.com", "//evil.example.com", "/\\evil.example.com", "/\r\n/x"] {
        let fields = [("csrf", csrf.as_str()), ("status", "resolved"), ("back", back)];
        let answer = site.post(&mut ann, &format!("/issues/{issue}/status"), &fields).await;
        assert_eq!(answer.location(), format!("/issues/{issue}"), "{back:?}");
    }
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    let site = site_with("https://errors.example.com").await;
    let mut visitor = Browser::default();
    let form = site.get(&mut visitor, "/signin").await;
    let csrf = csrf_of(&form.body);
    let answer = site
        .post(&mut visitor, "/signin", &[("csrf", &csrf), ("email", "ann@example.com"), ("password", PASSWORD)])
        .await;
    assert!(answer.cookie("booboo_session").unwrap().contains("; Secure"));
}

#[tokio::test]
async fn wrong_passwords_slow_an_account_without_locking_its_owner_out() {
    let site = site().await;
    let mut visitor = Browser::default();
    let csrf = csrf_of(&site.get(&mut visitor, "/signin").await.body);
    let attempt = |password: &'static str, email: &'static str| {
        let (site, csrf, mut visitor) = (&site, csrf.clone(), visitor.clone());
        async move { site.post(&mut visitor, "/signin", &[("csrf", &csrf), ("email", email), ("password", password)]).await }
    };
    let unknown = attempt("whatever!", "nobody@example.com").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.text().contains("Wrong email or password"));
    for _ in 0..5 {
        assert_eq!(attempt("wrong password", "bob@example.com").await.status, StatusCode::UNAUTHORIZED);
    }
    // Slowed now: of parallel guesses, at most one a second gets its
    // password checked; the others wait without a check.
    let started = std::time::Instant::now();
    let guess = || attempt("wrong password", "bob@example.com");
    let (a, b, c, d) = tokio::join!(guess(), guess(), guess(), guess());
    let answers = [a, b, c, d];
    let elapsed_seconds = started.elapsed().as_secs() as usize;
    let checked = answers.iter().filter(|a| a.status == StatusCode::UNAUTHORIZED).count();
    assert!(checked <= 1 + elapsed_seconds, "{checked} checks in {elapsed_seconds} s");
    for slowed in answers.iter().filter(|a| a.status != StatusCode::UNAUTHORIZED) {
        assert_eq!(slowed.status, StatusCode::TOO_MANY_REQUESTS);
        let retry_after = slowed.headers.get(header::RETRY_AFTER).unwrap().to_str().unwrap();
        assert!(["1", "2"].contains(&retry_after), "{retry_after}");
        assert!(slowed.text().contains("one attempt per second"));
        assert!(slowed.cookie("booboo_session").is_none());
    }
    // Not locked: the owner, waiting as told, gets in with the right password.
    let mut owner = None;
    for _ in 0..5 {
        let answer = attempt(PASSWORD, "bob@example.com").await;
        if answer.status == StatusCode::SEE_OTHER {
            owner = Some(answer);
            break;
        }
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert!(owner.expect("the owner gets in").cookie("booboo_session").is_some());
    // Another account from the same address is not slowed by bob's failures.
    assert_eq!(attempt(PASSWORD, "ann@example.com").await.status, StatusCode::SEE_OTHER);
    // A form without its cookie's token is refused.
    let mut stranger = Browser::default();
    let answer = site
        .post(&mut stranger, "/signin", &[("csrf", &csrf), ("email", "ann@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn forms_without_the_session_csrf_token_are_refused() {
    let site = site().await;
    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    let (_, bobs_csrf) = site.sign_in("bob@example.com").await;
    let issue = site.mine[0];
    for token in ["", "0000", bobs_csrf.as_str()] {
        let answer =
            site.post(&mut ann, &format!("/issues/{issue}/status"), &[("csrf", token), ("status", "resolved")]).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "token {token:?}");
        assert!(answer.text().contains("reload the page"));
    }
    let status = site.store.issue_detail(ADMIN, issue).await.unwrap().unwrap().issue.status;
    assert_eq!(status, IssueStatus::Unresolved);
    let answer =
        site.post(&mut ann, &format!("/issues/{issue}/status"), &[("csrf", &csrf), ("status", "resolved")]).await;
    assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, format!("/issues/{issue}").as_str()));
    assert_eq!(site.store.issue_detail(ADMIN, issue).await.unwrap().unwrap().issue.status, IssueStatus::Resolved);
}

/// Every route the dashboard's router accepts a POST on, read from its
/// source, so a form added later without a CSRF check fails here.
fn dashboard_post_routes() -> Vec<String> {
    let router = include_str!("../../src/web/mod.rs");
    let routes: Vec<String> = router
        .lines()
        .filter_map(|line| line.trim().strip_prefix(".route(\""))
        .filter(|rest| rest.contains("post("))
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect();
    assert!(routes.len() >= 30, "the router's POST routes were not found in web/mod.rs: {routes:?}");
    routes
}

#[tokio::test]
async fn every_form_refuses_a_missing_or_foreign_csrf_token() {
    let site = site().await;
    let (ann, _) = site.sign_in("ann@example.com").await;
    let (_, bobs_csrf) = site.sign_in("bob@example.com").await;
    let issue = site.mine[0].to_string();
    let fields: &[(&str, &str)] = &[
        ("status", "resolved"),
        ("action", "resolve"),
        ("issue", &issue),
        ("label", "forged"),
        ("name", "forged"),
        ("email", "mallory@example.com"),
        ("role", "admin"),
        ("method", "invite"),
        ("password", "forged forged forged"),
        ("body", "forged"),
    ];
    for route in dashboard_post_routes() {
        let path = route
            .replace("{org}", "acme")
            .replace("{project}", "web")
            .replace("{id}", &issue)
            .replace("{key}", "1")
            .replace("{user}", "1")
            .replace("{token}", "0123456789abcdef");
        for token in ["", bobs_csrf.as_str()] {
            let mut form = fields.to_vec();
            form.push(("csrf", token));
            // Signed in, with another session's token; and with no session
            // at all, where the anonymous forms want their own cookie.
            for browser in [&mut ann.clone(), &mut Browser::default()] {
                let answer = site.post(browser, &path, &form).await;
                let signed_in = !browser.header().is_empty();
                assert!(
                    answer.status == StatusCode::FORBIDDEN
                        || (!signed_in
                            && answer.status == StatusCode::SEE_OTHER
                            && answer.location().starts_with("/signin")),
                    "POST {path} with token {token:?} ({}) answered {}: {}",
                    if signed_in { "signed in" } else { "no session" },
                    answer.status,
                    answer.body
                );
                if answer.status == StatusCode::FORBIDDEN {
                    assert!(answer.text().contains("reload the page"), "POST {path}: {}", answer.body);
                }
            }
        }
    }
    let status = site.store.issue_detail(ADMIN, site.mine[0]).await.unwrap().unwrap().issue.status;
    assert_eq!(status, IssueStatus::Unresolved, "a refused form changed the issue");
    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    let answer = site.post(&mut ann, "/settings/tokens", &[("csrf", &csrf), ("name", "allowed")]).await;
    assert_ne!(answer.status, StatusCode::FORBIDDEN, "the session's own token is refused: {}", answer.body);
}

#[tokio::test]
async fn another_organisations_ids_answer_404() {
    let site = site().await;
    let (mut bob, csrf) = site.sign_in("bob@example.com").await;
    let (theirs, their_event, key) = (site.theirs, &site.their_event, site.their_key);
    let mine = site.mine[0];
    for path in [
        "/projects/other/api".to_string(),
        "/projects/other/api/setup".to_string(),
        "/projects/other/api/status".to_string(),
        "/projects/nowhere/none".to_string(),
        format!("/issues/{theirs}"),
        format!("/issues/{theirs}/events/{their_event}"),
        format!("/issues/{theirs}/events/{their_event}/json"),
        format!("/issues/{mine}/events/{their_event}"),
        format!("/issues/{mine}/events/{their_event}/json"),
        "/issues/99999999".to_string(),
        "/issues/not-a-number".to_string(),
        "/settings/orgs/other".to_string(),
    ] {
        let answer = site.get(&mut bob, &path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "GET {path}");
        assert!(!answer.body.contains("secret"), "GET {path} leaked the other organisation's issue");
    }
    let key_path = format!("/projects/other/api/keys/{key}/revoke");
    let own_key_path = format!("/projects/acme/web/keys/{key}/revoke");
    let token_path = format!("/settings/tokens/{}/revoke", site.their_token);
    for (path, fields) in [
        (format!("/issues/{theirs}/status"), vec![("status", "resolved")]),
        ("/projects/other/api/keys".to_string(), vec![("label", "mine now")]),
        (key_path, vec![]),
        (token_path, vec![]),
        ("/projects/acme/web/issues/bulk".to_string(), vec![("action", "resolve"), ("issue", "0")]),
        (
            "/settings/orgs/other/members".to_string(),
            vec![("email", "x@example.com"), ("role", "admin"), ("method", "invite")],
        ),
    ] {
        let mut fields = fields;
        fields.push(("csrf", &csrf));
        let answer = site.post(&mut bob, &path, &fields).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "POST {path}: {}", answer.body);
    }
    let bulk = site
        .post(
            &mut bob,
            "/projects/acme/web/issues/bulk",
            &[("csrf", &csrf), ("action", "ignore"), ("issue", &theirs.to_string())],
        )
        .await;
    assert_eq!(bulk.status, StatusCode::NOT_FOUND);
    // Bob is a member of acme, not an admin: keys are not his to revoke.
    let (mut ann, ann_csrf) = site.sign_in("ann@example.com").await;
    let answer = site.post(&mut bob, "/projects/acme/web/keys", &[("csrf", &csrf), ("label", "x")]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = site.post(&mut ann, &own_key_path, &[("csrf", &ann_csrf)]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "a key of another project through ann's own");
    assert!(site.store.ingest_target("fedcba9876543210fedcba9876543210").await.unwrap().is_some());
    assert_eq!(site.store.issue_detail(ADMIN, theirs).await.unwrap().unwrap().issue.status, IssueStatus::Unresolved);
}

#[tokio::test]
async fn bad_filters_say_what_is_wrong() {
    let site = site().await;
    let (mut ann, _) = site.sign_in("ann@example.com").await;
    for (query, says) in [
        ("status=bogus", "status must be unresolved, resolved, ignored or all"),
        ("sort=loudest", "sort must be last_seen"),
        ("page=0", "page must be a whole number"),
        ("level=shouting", "level must be one of"),
    ] {
        let answer = site.get(&mut ann, &format!("/projects/acme/web?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(answer.text().contains(says), "{query}: {}", answer.body);
    }
}

#[tokio::test]
async fn bulk_actions_resolve_several_issues_and_a_new_event_reopens_one() {
    let site = site().await;
    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    let [checkout, ship, ..] = site.mine[..] else { panic!() };
    let back = "/projects/acme/web?environment=staging";
    let answer = site
        .post(
            &mut ann,
            "/projects/acme/web/issues/bulk",
            &[
                ("csrf", &csrf),
                ("action", "resolve"),
                ("issue", &checkout.to_string()),
                ("issue", &ship.to_string()),
                ("back", back),
            ],
        )
        .await;
    // First a confirmation, listing the issues with the issue page's choices.
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("Resolve 2 issues?") && answer.body.contains("cannot check out"), "{}", answer.body);
    assert!(answer.body.contains(r#"value="next_release""#) && answer.body.contains(r#"name="confirm" value="yes""#));
    assert_eq!(site.store.issue_detail(ADMIN, ship).await.unwrap().unwrap().issue.status, IssueStatus::Unresolved);
    let answer = site
        .post(
            &mut ann,
            "/projects/acme/web/issues/bulk",
            &[
                ("csrf", &csrf),
                ("action", "resolve"),
                ("resolved_in", "now"),
                ("confirm", "yes"),
                ("issue", &checkout.to_string()),
                ("issue", &ship.to_string()),
                ("back", back),
            ],
        )
        .await;
    assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, back));
    let list = site.get(&mut ann, "/projects/acme/web").await.body;
    assert!(!list.contains("cannot check out") && !list.contains("ship in views.py"));
    let resolved = site.get(&mut ann, "/projects/acme/web?status=resolved").await.body;
    assert!(resolved.contains("cannot check out"));
    let empty = site.post(&mut ann, "/projects/acme/web/issues/bulk", &[("csrf", &csrf), ("action", "resolve")]).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);

    // The same crash again: the issue is open again, marked as a regression.
    let mut ann_api = ann.clone();
    let project = site.store.project_for(ADMIN, "acme", "web").await.unwrap().unwrap();
    site.store
        .store_events(&[new_event(project.id, clock::now_millis(), &body("ship", json!({"level": "warning"})))])
        .await
        .unwrap();
    let page = site.get(&mut ann_api, &format!("/issues/{ship}")).await.body;
    assert!(page.contains("regression") && page.contains(">unresolved<"), "{page}");
}

#[tokio::test]
async fn issues_are_resolved_in_a_release_from_the_issue_page_and_in_bulk() {
    let site = site().await;
    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    let [checkout, ship, ..] = site.mine[..] else { panic!() };
    let page = site.get(&mut ann, &format!("/issues/{checkout}")).await.body;
    for choice in ["now", "next_release", "current_release", "release"] {
        assert!(page.contains(&format!(r#"<option value="{choice}">"#)), "{choice}: {page}");
    }
    let path = format!("/issues/{checkout}/status");
    let fields = [("csrf", csrf.as_str()), ("status", "resolved"), ("resolved_in", "release"), ("release", "1.4.0")];
    assert_eq!(site.post(&mut ann, &path, &fields).await.status, StatusCode::SEE_OTHER);
    let page = site.get(&mut ann, &format!("/issues/{checkout}")).await.body;
    assert!(page.contains("Resolved in 1.4.0"), "{page}");
    let missing = [("csrf", csrf.as_str()), ("status", "resolved"), ("resolved_in", "release"), ("release", "")];
    let answer = site.post(&mut ann, &path, &missing).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.text().contains("type the release the fix is in"), "{}", answer.body);

    // In bulk, once confirmed: the next release, after the latest one seen.
    let fields = [
        ("csrf", csrf.as_str()),
        ("action", "resolve"),
        ("resolved_in", "next_release"),
        ("confirm", "yes"),
        ("issue", &ship.to_string()),
    ];
    let answer = site.post(&mut ann, "/projects/acme/web/issues/bulk", &fields).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let issue = site.store.issue_detail(ADMIN, ship).await.unwrap().unwrap().issue;
    let resolved_in = issue.resolved_in.expect("resolved in a release");
    let page = site.get(&mut ann, &format!("/issues/{ship}")).await.body;
    // The seeded latest release is hostile markup: shown escaped.
    assert_eq!(resolved_in.release.as_deref(), Some("<script>alert('x')</script>"));
    assert!(page.contains("Resolved in the next release (after &lt;script&gt;"), "{page}");
    assert!(!page.contains("(after <script>"));
    // Ignoring in bulk offers the ignore conditions.
    let fields = [("csrf", csrf.as_str()), ("action", "ignore"), ("issue", &ship.to_string())];
    let answer = site.post(&mut ann, "/projects/acme/web/issues/bulk", &fields).await;
    assert!(answer.body.contains("Ignore 1 issue?") && answer.body.contains(r#"value="users""#), "{}", answer.body);
}

#[tokio::test]
async fn keys_are_created_and_a_revoked_one_is_refused_at_once() {
    let site = site().await;
    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    let answer = site.post(&mut ann, "/projects/acme/web/keys", &[("csrf", &csrf), ("label", "worker")]).await;
    assert_eq!(answer.location(), "/projects/acme/web/setup#keys");
    let project = site.store.project_for(ADMIN, "acme", "web").await.unwrap().unwrap();
    let keys = site.store.project_keys(ADMIN, project.id).await.unwrap().unwrap();
    assert_eq!(keys.len(), 2);
    let setup = site.get(&mut ann, "/projects/acme/web/setup").await.body;
    assert!(setup.contains("worker") && setup.contains(&keys[1].token));
    let old = &keys[0];
    let answer = site.post(&mut ann, &format!("/projects/acme/web/keys/{}/revoke", old.id), &[("csrf", &csrf)]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let ingest = Request::post("/")
        .header("X-Booboo-DSN", &old.token)
        .header("Content-Type", "application/json")
        .body(Body::from(serde_json::to_vec(&body("late", json!({}))).unwrap()))
        .unwrap();
    let response = app(site.state.clone()).oneshot(ingest).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "a revoked key is refused at once");
    let setup = site.get(&mut ann, "/projects/acme/web/setup").await.body;
    assert!(setup.contains("revoked"));
}

#[tokio::test]
async fn a_project_is_created_with_its_organisation_and_its_setup_page_waits() {
    let site = site().await;
    let (mut bob, csrf) = site.sign_in("bob@example.com").await;
    let answer =
        site.post(&mut bob, "/projects", &[("csrf", &csrf), ("organisation", "bobs"), ("project", "blog")]).await;
    assert_eq!(answer.location(), "/projects/bobs/blog/setup");
    let setup = site.get(&mut bob, "/projects/bobs/blog/setup").await.body;
    assert!(setup.contains("Waiting for the first event"));
    let issues = site.get(&mut bob, "/projects/bobs/blog").await.body;
    assert!(issues.contains("No errors yet"));
    for (org, project, says) in [
        ("acme", "blog", "nly an admin of the organisation acme"),
        ("bobs", "blog", "already exists"),
        ("Bad Org", "x", "must be 1 to 50 lowercase letters"),
    ] {
        let answer =
            site.post(&mut bob, "/projects", &[("csrf", &csrf), ("organisation", org), ("project", project)]).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{org}/{project}");
        assert!(answer.text().contains(says), "{org}/{project}: {}", answer.body);
        assert!(answer.text().contains(&format!("value=\"{project}\"")), "the form keeps what was typed");
    }
}

#[tokio::test]
async fn first_run_goes_through_the_setup_link_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Overrides { data_dir: Some(dir.path().to_path_buf()), ..Overrides::default() }).unwrap();
    let store = store::open(&config.database_url).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(store.clone(), metrics.clone(), 10, 10);
    let site = Site {
        state: AppState { store: store.clone(), writer, metrics, config: Arc::new(config), mailer: None },
        store: store.clone(),
        mine: vec![],
        my_event: String::new(),
        theirs: 0,
        their_event: String::new(),
        their_key: 0,
        their_token: String::new(),
        _dir: dir,
    };
    let mut visitor = Browser::default();
    let welcome = site.get(&mut visitor, "/").await;
    assert!(welcome.text().contains("one-time") && welcome.text().contains("setup link"));
    let token = secrets::new_session_token();
    let now = clock::now_millis();
    store.add_setup_token(&secrets::token_hash(&token), now, now + 86_400_000).await.unwrap();
    assert_eq!(site.get(&mut visitor, "/setup/not-the-token").await.status, StatusCode::NOT_FOUND);
    let form = site.get(&mut visitor, &format!("/setup/{token}")).await;
    assert_eq!(form.status, StatusCode::OK);
    let csrf = csrf_of(&form.body);
    let path = format!("/setup/{token}");
    let short = site
        .post(
            &mut visitor,
            &path,
            &[("csrf", &csrf), ("email", "root@example.com"), ("password", "short"), ("password_repeat", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.text().contains("at least 8 characters") && short.text().contains("root@example.com"));
    let fields =
        [("csrf", csrf.as_str()), ("email", "root@example.com"), ("password", PASSWORD), ("password_repeat", PASSWORD)];
    let done = site.post(&mut visitor, &path, &fields).await;
    assert_eq!(done.location(), "/projects");
    assert_eq!(site.get(&mut visitor, "/projects").await.status, StatusCode::OK, "signed in by the setup");
    let admin = store.user_by_email("root@example.com").await.unwrap().unwrap();
    assert!(admin.is_admin);
    let again = site.get(&mut Browser::default(), &format!("/setup/{token}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.text().contains("no longer valid"));
    let mut other = Browser::default();
    let csrf = csrf_of(&site.get(&mut other, "/signin").await.body);
    let fields = [
        ("csrf", csrf.as_str()),
        ("email", "second@example.com"),
        ("password", PASSWORD),
        ("password_repeat", PASSWORD),
    ];
    assert_eq!(site.post(&mut other, &path, &fields).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(store.user_count().await.unwrap(), 1);
}

#[tokio::test]
async fn sessions_survive_a_new_router_and_end_on_sign_out() {
    let site = site().await;
    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    // Another node (or a restarted one) on the same database knows the session.
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(site.store.clone(), metrics.clone(), 10, 10);
    let other_node = Site {
        state: AppState { store: site.store.clone(), writer, metrics, config: site.state.config.clone(), mailer: None },
        store: site.store.clone(),
        mine: vec![],
        my_event: String::new(),
        theirs: 0,
        their_event: String::new(),
        their_key: 0,
        their_token: String::new(),
        _dir: tempfile::tempdir().unwrap(),
    };
    assert_eq!(other_node.get(&mut ann.clone(), "/projects").await.status, StatusCode::OK);
    let out = site.post(&mut ann, "/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.location(), "/signin");
    assert_eq!(site.get(&mut ann, "/projects").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn settings_change_the_password_and_manage_tokens() {
    let site = site().await;
    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    let (mut ann_elsewhere, _) = site.sign_in("ann@example.com").await;
    let wrong = site
        .post(
            &mut ann,
            "/settings/password",
            &[
                ("csrf", &csrf),
                ("current_password", "nope"),
                ("new_password", "a new password"),
                ("new_password_repeat", "a new password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.text().contains("current password is wrong"));
    let changed = site
        .post(
            &mut ann,
            "/settings/password",
            &[
                ("csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "a new password"),
                ("new_password_repeat", "a new password"),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert!(changed.text().contains("Password changed"));
    assert_eq!(site.get(&mut ann, "/settings").await.status, StatusCode::OK, "this session goes on");
    assert_eq!(site.get(&mut ann_elsewhere, "/settings").await.status, StatusCode::SEE_OTHER, "others end");

    let created = site.post(&mut ann, "/settings/tokens", &[("csrf", &csrf), ("label", "ci")]).await;
    let at = created.body.find("bbt_").expect("the new token is shown once");
    let token = &created.body[at..at + 68];
    let user = site.store.user_for_api_token(&secrets::token_hash(token)).await.unwrap().unwrap();
    assert_eq!(user.email, "ann@example.com");
    assert!(!site.get(&mut ann, "/settings").await.text().contains(token), "never shown again");
    let id = site.store.api_tokens_of(user.id).await.unwrap()[0].id;
    let revoked = site.post(&mut ann, &format!("/settings/tokens/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(revoked.location(), "/settings#tokens");
    assert!(site.store.user_for_api_token(&secrets::token_hash(token)).await.unwrap().is_none());
    let unnamed = site.post(&mut ann, "/settings/tokens", &[("csrf", &csrf), ("label", "")]).await;
    assert_eq!(unnamed.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn admins_add_invite_promote_and_remove_members() {
    let site = site().await;
    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    let members = "/settings/orgs/acme/members";
    // An organisation admin cannot create an account, neither with a
    // password of their choosing nor through a link they could open.
    for method in
        [&[("method", "password"), ("password", PASSWORD), ("password_repeat", PASSWORD)][..], &[("method", "invite")]]
    {
        let mut fields = vec![("csrf", csrf.as_str()), ("email", "carl@example.com"), ("role", "member")];
        fields.extend_from_slice(method);
        let refused = site.post(&mut ann, members, &fields).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused.text().contains("only instance administrators create accounts"), "{}", refused.body);
        assert!(!refused.body.contains("/invitations/"), "no link an organisation admin could open");
        assert!(site.store.user_by_email("carl@example.com").await.unwrap().is_none());
    }
    assert!(!site.get(&mut ann, "/settings/orgs/acme").await.body.contains("type=\"password\""));
    // Someone with an account is added at once.
    let hash = secrets::hash_password(PASSWORD).unwrap();
    site.store.create_user("carl@example.com", &hash, false, T0).await.unwrap();
    let added =
        site.post(&mut ann, members, &[("csrf", &csrf), ("email", "carl@example.com"), ("role", "member")]).await;
    assert!(added.text().contains("carl@example.com already had an account"), "{}", added.body);
    site.sign_in("carl@example.com").await;
    // An instance administrator gets an invitation link to pass on.
    site.store.create_user("root@example.com", &hash, true, T0).await.unwrap();
    let (mut root, root_csrf) = site.sign_in("root@example.com").await;
    let invited =
        site.post(&mut root, members, &[("csrf", &root_csrf), ("email", "dana@example.com"), ("role", "admin")]).await;
    let invited = invited.text();
    let at = invited.find("/invitations/").expect("an invitation link");
    let link = &invited[at..at + "/invitations/".len() + 64];
    let mut dana = Browser::default();
    let form = site.get(&mut dana, link).await;
    assert!(form.text().contains("dana@example.com") && form.text().contains("admin"));
    let csrf_dana = csrf_of(&form.body);
    let joined = site
        .post(&mut dana, link, &[("csrf", &csrf_dana), ("password", PASSWORD), ("password_repeat", PASSWORD)])
        .await;
    assert_eq!(joined.location(), "/projects");
    assert!(site.get(&mut dana, "/projects").await.text().contains("acme"));
    assert_eq!(site.get(&mut Browser::default(), link).await.status, StatusCode::NOT_FOUND, "used up");
    let dana_id = site.store.user_by_email("dana@example.com").await.unwrap().unwrap().id;
    let bob_id = site.store.user_by_email("bob@example.com").await.unwrap().unwrap().id;
    let ann_id = site.store.user_by_email("ann@example.com").await.unwrap().unwrap().id;
    site.post(&mut ann, &format!("{members}/{bob_id}/role"), &[("csrf", &csrf), ("role", "admin")]).await;
    let viewer = site.store.user_by_email("bob@example.com").await.unwrap().unwrap().viewer();
    assert_eq!(site.store.role_in(viewer, "acme").await.unwrap(), Some(Role::Admin));
    let removed = site.post(&mut ann, &format!("{members}/{dana_id}/remove"), &[("csrf", &csrf)]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(!site.get(&mut dana, "/projects").await.body.contains("/projects/acme/web"));
    // The last admin stays.
    site.post(&mut ann, &format!("{members}/{bob_id}/role"), &[("csrf", &csrf), ("role", "member")]).await;
    let last = site.post(&mut ann, &format!("{members}/{ann_id}/remove"), &[("csrf", &csrf)]).await;
    assert_eq!(last.status, StatusCode::BAD_REQUEST);
    assert!(last.text().contains("only admin"));
    // Members see the list but cannot change it.
    let (mut carl, carl_csrf) = site.sign_in("carl@example.com").await;
    assert!(!site.get(&mut carl, "/settings/orgs/acme").await.text().contains("Add a member"));
    let refused = site.post(&mut carl, &format!("{members}/{bob_id}/remove"), &[("csrf", &carl_csrf)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn admins_delete_an_issue_and_a_project_after_confirming() {
    let site = site().await;
    let [checkout, ..] = site.mine[..] else { panic!() };
    let (mut bob, bob_csrf) = site.sign_in("bob@example.com").await;
    let refused = site.post(&mut bob, &format!("/issues/{checkout}/delete"), &[("csrf", &bob_csrf)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "members do not delete");

    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    let confirm = site.get(&mut ann, &format!("/issues/{checkout}/delete")).await;
    assert!(confirm.body.contains("cannot be undone"), "{}", confirm.body);
    let answer = site.post(&mut ann, &format!("/issues/{checkout}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/projects/acme/web"));
    assert_eq!(site.get(&mut ann, &format!("/issues/{checkout}")).await.status, StatusCode::NOT_FOUND);
    assert!(site.store.event(ADMIN, &site.my_event).await.unwrap().is_none(), "its events are gone");
    let theirs = site.theirs;
    let answer = site.post(&mut ann, &format!("/issues/{theirs}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "another organisation's issue is not ours to delete");

    let wrong = site.post(&mut ann, "/projects/acme/web/delete", &[("csrf", &csrf), ("confirm", "nope")]).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("Type the project"), "{}", wrong.body);
    let answer = site.post(&mut ann, "/projects/acme/web/delete", &[("csrf", &csrf), ("confirm", "web")]).await;
    assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/projects"));
    assert!(site.store.project_for(ADMIN, "acme", "web").await.unwrap().is_none());
    assert!(site.store.ingest_target("0123456789abcdef0123456789abcdef").await.unwrap().is_none());
}

#[tokio::test]
async fn the_issue_page_ignores_for_a_time_or_until_more_events_and_says_until_when() {
    let site = site().await;
    let issue = site.mine[0];
    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    let page = site.get(&mut ann, &format!("/issues/{issue}")).await;
    for choice in ["forever", "for 1 hour", "for 24 hours", "for 7 days", "until N more events", "until N more users"] {
        assert!(page.body.contains(choice), "{choice}");
    }
    let path = format!("/issues/{issue}/status");
    // Until 3 more events: its count now plus three.
    let fields = [("csrf", csrf.as_str()), ("status", "ignored"), ("ignore", "count"), ("n", "3")];
    let answer = site.post(&mut ann, &path, &fields).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let detail = site.store.issue_detail(ADMIN, issue).await.unwrap().unwrap().issue;
    assert_eq!((detail.status, detail.ignore_until.count), (IssueStatus::Ignored, Some(detail.count + 3)));
    assert!(site.get(&mut ann, &format!("/issues/{issue}")).await.body.contains("until it has"));
    let before = clock::now_millis();
    let fields = [("csrf", csrf.as_str()), ("status", "ignored"), ("ignore", "60"), ("n", "")];
    assert_eq!(site.post(&mut ann, &path, &fields).await.status, StatusCode::SEE_OTHER);
    let detail = site.store.issue_detail(ADMIN, issue).await.unwrap().unwrap().issue;
    let until = detail.ignore_until.at.unwrap();
    assert!(until >= before + 3_600_000 && detail.ignore_until.count.is_none(), "{:?}", detail.ignore_until);
    // Bad numbers are refused with what was wrong, and change nothing.
    for (choice, n, words) in [("count", "", "whole number"), ("users", "0", "from 1 to"), ("-5", "", "from 1 to")] {
        let fields = [("csrf", csrf.as_str()), ("status", "ignored"), ("ignore", choice), ("n", n)];
        let answer = site.post(&mut ann, &path, &fields).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{choice} {n}");
        assert!(answer.body.contains(words), "{choice} {n}: {}", answer.body);
    }
    let detail = site.store.issue_detail(ADMIN, issue).await.unwrap().unwrap().issue;
    assert_eq!(detail.ignore_until.at, Some(until));
}

#[tokio::test]
async fn the_issue_page_says_how_many_events_retention_kept() {
    let site = site().await;
    let (mut ann, _) = site.sign_in("ann@example.com").await;
    let project = site.store.issue_detail(ADMIN, site.mine[0]).await.unwrap().unwrap().issue.project_id;
    let now = clock::now_millis();
    let more: Vec<_> = (1..=6).map(|i| new_event(project, now - 50_000 + i, &body("checkout", json!({})))).collect();
    let StoreOutcome::Stored { issue_id: issue } = site.store.store_events(&more).await.unwrap()[0] else { panic!() };
    assert!(!site.get(&mut ann, &format!("/issues/{issue}")).await.body.contains("removed by retention"));
    let settings = booboo_server::retention::RetentionSettings {
        default_max_events: 6,
        default_retention_days: 90,
        max_disk_bytes: None,
        full_payload_days: None,
        interval: std::time::Duration::from_secs(60),
    };
    let report = booboo_server::retention::run_once(&*site.store, &settings, now, None).await.unwrap();
    // 11 stored in the project: the checkout issue (7) gives up five.
    assert_eq!(report.over_count, 5);
    let page = site.get(&mut ann, &format!("/issues/{issue}")).await;
    assert!(page.body.contains("Showing 2 of 7 events (older ones removed by retention)"), "{}", page.body);
}

#[tokio::test]
async fn members_merge_ticked_issues_after_choosing_which_to_keep() {
    let site = site().await;
    let [checkout, ship, ..] = site.mine[..] else { panic!() };
    let (mut bob, csrf) = site.sign_in("bob@example.com").await;
    let back = "/projects/acme/web?environment=staging";
    let (checkout_id, ship_id) = (checkout.to_string(), ship.to_string());
    let answer = site
        .post(
            &mut bob,
            "/projects/acme/web/issues/bulk",
            &[("csrf", &csrf), ("action", "merge"), ("issue", &checkout_id), ("issue", &ship_id), ("back", back)],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(answer.location().starts_with("/projects/acme/web/merge?issue="), "{}", answer.location());
    let confirm = site.get(&mut bob, answer.location()).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let text = confirm.text();
    assert!(text.contains("Merge 2 issues into one?") && text.contains("cannot be undone"), "{text}");
    assert!(text.contains(&format!("href=\"{back}\"")), "cancel goes back to the list");
    let one = site.get(&mut bob, &format!("/projects/acme/web/merge?issue={checkout}")).await;
    assert_eq!(one.status, StatusCode::BAD_REQUEST, "one issue is no merge");
    let theirs = site.theirs.to_string();
    let refused = site
        .post(
            &mut bob,
            "/projects/acme/web/merge",
            &[("csrf", &csrf), ("target", &checkout_id), ("issue", &checkout_id), ("issue", &theirs)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "another organisation's issue is not ours to merge");
    let no_csrf =
        site.post(&mut bob, "/projects/acme/web/merge", &[("target", &checkout_id), ("issue", &ship_id)]).await;
    assert_ne!(no_csrf.status, StatusCode::SEE_OTHER);

    let store = site.store.clone();
    let count = |id| {
        let store = store.clone();
        async move { store.issue_detail(ADMIN, id).await.unwrap().unwrap().issue.count }
    };
    let before = count(checkout).await + count(ship).await;
    let answer = site
        .post(
            &mut bob,
            "/projects/acme/web/merge",
            &[("csrf", &csrf), ("target", &checkout_id), ("issue", &checkout_id), ("issue", &ship_id)],
        )
        .await;
    assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, format!("/issues/{checkout}").as_str()));
    assert_eq!(count(checkout).await, before);
    // The merged issue's old link leads to the kept one.
    let old = site.get(&mut bob, &format!("/issues/{ship}")).await;
    assert_eq!((old.status, old.location()), (StatusCode::SEE_OTHER, format!("/issues/{checkout}").as_str()));
    let page = site.get(&mut bob, &format!("/issues/{checkout}")).await;
    assert_eq!(page.status, StatusCode::OK);
}

#[tokio::test]
async fn admins_delete_a_key_and_it_is_refused_at_once() {
    let site = site().await;
    let project = site.store.project_for(ADMIN, "acme", "web").await.unwrap().unwrap();
    let key = site.store.project_keys(ADMIN, project.id).await.unwrap().unwrap().remove(0);
    let path = format!("/projects/acme/web/keys/{}/delete", key.id);
    let (mut bob, bob_csrf) = site.sign_in("bob@example.com").await;
    let refused = site.post(&mut bob, &path, &[("csrf", &bob_csrf)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "members do not delete keys");

    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    let setup = site.get(&mut ann, "/projects/acme/web/setup").await.body;
    assert!(setup.contains(&format!("action=\"{path}\"")), "{setup}");
    let answer = site.post(&mut ann, &path, &[("csrf", &csrf)]).await;
    assert_eq!((answer.status, answer.location()), (StatusCode::SEE_OTHER, "/projects/acme/web/setup#keys"));
    let ingest = Request::post("/")
        .header("X-Booboo-DSN", &key.token)
        .header("Content-Type", "application/json")
        .body(Body::from(serde_json::to_vec(&body("late", json!({}))).unwrap()))
        .unwrap();
    let response = app(site.state.clone()).oneshot(ingest).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "a deleted key is refused at once");
    let setup = site.get(&mut ann, "/projects/acme/web/setup").await.body;
    assert!(!setup.contains(&key.token), "it left the list");
    assert_eq!(site.post(&mut ann, &path, &[("csrf", &csrf)]).await.status, StatusCode::NOT_FOUND);
    let theirs = format!("/projects/other/api/keys/{}/delete", site.their_key);
    assert_eq!(site.post(&mut ann, &theirs, &[("csrf", &csrf)]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_say_what_was_counted_but_not_stored_and_when_the_server_sheds_load() {
    let site = site().await;
    let project_id = site.store.issue_detail(ADMIN, site.mine[0]).await.unwrap().unwrap().issue.project_id;
    let quota = store::RateLimit { count: 1, seconds: 3600 };
    crate::quota_store::set_quota(&site.store, project_id, Some(quota), false).await;
    let now = clock::now_millis();
    let over: Vec<_> = (0..3).map(|i| new_event(project_id, now + i, &body("quota_checkout", json!({})))).collect();
    let outcomes = site.store.store_events(&over).await.unwrap();
    assert_eq!(outcomes.iter().filter(|o| matches!(o, StoreOutcome::NotStored { .. })).count(), 2, "{outcomes:?}");
    let issue = outcomes[0].issue_id().unwrap();
    let (mut ann, _) = site.sign_in("ann@example.com").await;
    for path in [format!("/issues/{issue}"), "/projects/acme/web".to_string()] {
        let page = site.get(&mut ann, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.body.contains("2 events counted but not stored (rate limit)"), "{path}: {}", page.body);
        assert!(!page.body.contains("Refusing new events"), "{path}");
    }
    // Free disk below the minimum: both lists carry a banner with the reason.
    site.state.metrics.shedding().watch_free_disk(&std::env::temp_dir(), u64::MAX);
    for path in ["/projects", "/projects/acme/web"] {
        let page = site.get(&mut ann, path).await;
        assert!(page.body.contains("Refusing new events since"), "{path}: {}", page.body);
        assert!(page.body.contains("free disk space is below --min-free-disk"), "{path}");
    }
}

#[tokio::test]
async fn an_issue_none_of_whose_events_is_stored_still_has_its_page() {
    let site = site().await;
    let project_id = site.store.issue_detail(ADMIN, site.mine[0]).await.unwrap().unwrap().issue.project_id;
    let quota = store::RateLimit { count: 1, seconds: 3600 };
    crate::quota_store::set_quota(&site.store, project_id, Some(quota), false).await;
    let now = clock::now_millis();
    // The quota's one stored event goes to another issue; these two are only counted.
    let first = new_event(project_id, now, &body("quota_first", json!({})));
    let counted: Vec<_> =
        (1..3).map(|i| new_event(project_id, now + i, &body("quota_only_counted", json!({})))).collect();
    site.store.store_events(&[first]).await.unwrap();
    let outcomes = site.store.store_events(&counted).await.unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, StoreOutcome::NotStored { .. })), "{outcomes:?}");
    let issue = outcomes[0].issue_id().unwrap();
    let (mut ann, _) = site.sign_in("ann@example.com").await;
    let page = site.get(&mut ann, &format!("/issues/{issue}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"no-stored-events\""), "{}", page.body);
    assert!(page.body.contains("2 events counted but not stored (rate limit)"), "{}", page.body);
    let missing = site.get(&mut ann, &format!("/issues/{issue}/events/{}", "a".repeat(32))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "a named event that is not stored is not found");
}

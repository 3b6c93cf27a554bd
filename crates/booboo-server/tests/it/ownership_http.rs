//! Ownership and history through the router on a real SQLite store: the API
//! (assignee, comments, activity, with their 400s) and the dashboard (the
//! assignee picker, bulk assign, the comment form, the activity list, and
//! pending invitations on the members page).

use crate::support::*;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use booboo_server::app::app;
use booboo_server::config::{Config, Overrides};
use booboo_server::group_commit::Writer;
use booboo_server::metrics::Metrics;
use booboo_server::state::AppState;
use booboo_server::store::{self, Invitation, Role, Session, Store, StoreOutcome};
use booboo_server::{clock, secrets};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

pub(crate) struct Site {
    state: AppState,
    store: Arc<dyn Store>,
    issue: i64,
    /// An issue of another organisation.
    theirs: i64,
    _dir: tempfile::TempDir,
}

/// Someone signed in: their API token, session cookie and CSRF token.
pub(crate) struct Person {
    token: String,
    cookie: String,
    csrf: String,
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    location: String,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn person(store: &Arc<dyn Store>, email: &str, org: Option<(&str, Role)>) -> Person {
    let user = store.create_user(email, "unused", false, T0).await.unwrap();
    if let Some((org, role)) = org {
        store.set_membership(org, user.id, role).await.unwrap();
    }
    let token = secrets::new_api_token();
    store.create_api_token(user.id, &secrets::token_hash(&token), "test", T0).await.unwrap();
    let session_token = secrets::new_session_token();
    let csrf = secrets::new_session_token();
    let now = clock::now_millis();
    let session = Session { user_id: user.id, csrf_token: csrf.clone(), created_at: now, expires_at: now + 3_600_000 };
    store.create_session(&secrets::token_hash(&session_token), user.id, &session).await.unwrap();
    Person { token, cookie: format!("booboo_session={session_token}"), csrf }
}

/// acme/web with ann its admin and bob a member; eve administers only
/// other/api.
pub(crate) async fn site() -> (Site, Person, Person, Person) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Overrides { data_dir: Some(dir.path().to_path_buf()), ..Overrides::default() }).unwrap();
    let store = store::open(&config.database_url).await.unwrap();
    let web = store.create_project("acme", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap().0;
    let api = store.create_project("other", "api", &format!("{:032x}", rand_u128()), T0).await.unwrap().0;
    let ann = person(&store, "ann@example.com", Some(("acme", Role::Admin))).await;
    let bob = person(&store, "bob@example.com", Some(("acme", Role::Member))).await;
    let eve = person(&store, "eve@example.com", Some(("other", Role::Admin))).await;
    let now = clock::now_millis();
    let outcomes = store
        .store_events(&[
            new_event(web.id, now, &body("pay", json!({}))),
            new_event(api.id, now, &body("pay", json!({}))),
        ])
        .await
        .unwrap();
    let [StoreOutcome::Stored { issue_id: issue }, StoreOutcome::Stored { issue_id: theirs }] = outcomes[..] else {
        panic!("{outcomes:?}")
    };
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = Writer::start(store.clone(), metrics.clone(), config.queue_capacity, config.max_batch);
    let state = AppState { store: store.clone(), writer, metrics, config: Arc::new(config), mailer: None };
    (Site { state, store, issue, theirs, _dir: dir }, ann, bob, eve)
}

impl Site {
    async fn send(&self, request: Request<Body>) -> Answer {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned();
        Answer { status, location, body }
    }

    pub(crate) async fn api(&self, who: &Person, method: &str, path: &str, body: Option<Value>) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", who.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty))
            .unwrap();
        self.send(request).await
    }

    async fn page(&self, who: &Person, path: &str) -> Answer {
        self.send(Request::get(path).header(header::COOKIE, &who.cookie).body(Body::empty()).unwrap()).await
    }

    pub(crate) async fn form(&self, who: &Person, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut fields = fields.to_vec();
        if !fields.iter().any(|(k, _)| *k == "csrf") {
            fields.push(("csrf", &who.csrf));
        }
        let request = Request::post(path)
            .header(header::COOKIE, &who.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(serde_urlencoded::to_string(&fields).unwrap()))
            .unwrap();
        self.send(request).await
    }
}

#[tokio::test]
async fn the_api_assigns_issues_to_members_and_names_a_wrong_address() {
    let (site, ann, _bob, eve) = site().await;
    let path = format!("/issues/{}", site.issue);
    assert_eq!(site.api(&ann, "GET", &path, None).await.json()["assignee"], Value::Null);

    let answer = site.api(&ann, "PATCH", &path, Some(json!({"assignee": "Bob@Example.com"}))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        (answer.json()["assignee"].clone(), answer.json()["status"].clone()),
        (json!("bob@example.com"), json!("unresolved"))
    );
    assert_eq!(site.api(&ann, "GET", &path, None).await.json()["assignee"], "bob@example.com");
    let listed = site.api(&ann, "GET", "/projects/acme/web/issues", None).await.json();
    assert_eq!(listed["items"][0]["assignee"], "bob@example.com");

    for (body, named) in [
        (json!({"assignee": "eve@example.com"}), "eve@example.com is not a member"),
        (json!({"assignee": "nobody@example.com"}), "nobody@example.com is not a member"),
        (json!({"assignee": "not an address"}), "\"not an address\" is not an email address"),
        (json!({"assignee": 7}), "field `assignee` must be a member's e-mail or null"),
    ] {
        let answer = site.api(&ann, "PATCH", &path, Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.body);
        let detail = answer.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(named), "{body}: {detail}");
    }
    // A refused assignee changes nothing else either: not even the status.
    let answer =
        site.api(&ann, "PATCH", &path, Some(json!({"assignee": "eve@example.com", "status": "resolved"}))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let issue = site.api(&ann, "GET", &path, None).await.json();
    assert_eq!((issue["status"].clone(), issue["assignee"].clone()), (json!("unresolved"), json!("bob@example.com")));

    // Both at once, then unassigning.
    let answer =
        site.api(&ann, "PATCH", &path, Some(json!({"assignee": "ann@example.com", "status": "resolved"}))).await;
    assert_eq!(
        (answer.json()["assignee"].clone(), answer.json()["status"].clone()),
        (json!("ann@example.com"), json!("resolved"))
    );
    let answer = site.api(&ann, "PATCH", &path, Some(json!({"assignee": null}))).await;
    assert_eq!(answer.json()["assignee"], Value::Null);
    let answer = site.api(&ann, "PATCH", &path, Some(json!({}))).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.json()["detail"].as_str().unwrap().contains("`assignee`"));
    // Another organisation's issue is not found, whatever the body.
    let answer = site.api(&eve, "PATCH", &path, Some(json!({"assignee": null}))).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_api_takes_comments_within_limits_and_lists_the_activity_newest_first() {
    let (site, ann, bob, eve) = site().await;
    let comments = format!("/issues/{}/comments", site.issue);
    let answer = site.api(&bob, "POST", &comments, Some(json!({"text": "I'll take <this> one"}))).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let comment = answer.json();
    assert_eq!((comment["kind"].clone(), comment["actor"].clone()), (json!("comment"), json!("bob@example.com")));
    assert_eq!(comment["detail"]["text"], "I'll take <this> one");

    let too_long = "x".repeat(10_001);
    for (body, named) in [
        (json!({"text": ""}), "needs some text"),
        (json!({"text": "   "}), "needs some text"),
        (json!({"text": too_long}), "at most 10000 characters"),
        (json!({"text": 5}), "must be a string"),
        (json!({}), "field `text` is required"),
    ] {
        let answer = site.api(&bob, "POST", &comments, Some(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert!(answer.json()["detail"].as_str().unwrap().contains(named), "{}", answer.body);
    }
    let answer = site
        .send(
            Request::post(format!("/api/v1{comments}"))
                .header(header::AUTHORIZATION, format!("Bearer {}", bob.token))
                .body(Body::from("not json"))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let exactly = "y".repeat(10_000);
    assert_eq!(site.api(&bob, "POST", &comments, Some(json!({"text": exactly}))).await.status, StatusCode::CREATED);
    assert_eq!(site.api(&eve, "POST", &comments, Some(json!({"text": "hi"}))).await.status, StatusCode::NOT_FOUND);

    let path = format!("/issues/{}", site.issue);
    site.api(&ann, "PATCH", &path, Some(json!({"status": "resolved"}))).await;
    site.api(&ann, "PATCH", &path, Some(json!({"assignee": "bob@example.com"}))).await;
    let activity = site.api(&ann, "GET", &format!("{path}/activity"), None).await.json();
    let items = activity["items"].as_array().unwrap();
    let seen: Vec<_> = items.iter().map(|a| (a["kind"].as_str().unwrap(), a["actor"].as_str().unwrap())).collect();
    assert_eq!(
        seen,
        [
            ("assignment", "ann@example.com"),
            ("status", "ann@example.com"),
            ("comment", "bob@example.com"),
            ("comment", "bob@example.com")
        ]
    );
    assert_eq!(items[1]["detail"], json!({"status": "resolved"}));
    assert!(items[0]["created_at"].as_str().unwrap().ends_with('Z'));
    // Paged like every list.
    let first = site.api(&ann, "GET", &format!("{path}/activity?limit=3"), None).await.json();
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = site.api(&ann, "GET", &format!("{path}/activity?limit=3&cursor={cursor}"), None).await.json();
    assert_eq!((rest["items"].as_array().unwrap().len(), rest["next_cursor"].clone()), (1, Value::Null));
    let listed = site.api(&ann, "GET", &comments, None).await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    assert!(listed["items"].as_array().unwrap().iter().all(|c| c["kind"] == "comment"));
    assert_eq!(site.api(&eve, "GET", &format!("{path}/activity"), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(site.api(&ann, "GET", "/issues/nope/activity", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_issue_page_assigns_comments_and_shows_the_history_escaped() {
    let (site, ann, bob, eve) = site().await;
    let path = format!("/issues/{}", site.issue);
    let page = site.page(&bob, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("<option value=\"ann@example.com\">ann@example.com</option>"),
        "the picker lists members"
    );
    assert!(page.body.contains("Nothing yet"));

    // Forms need the session's CSRF token.
    let forged = site.form(&bob, &format!("{path}/comments"), &[("csrf", "forged"), ("text", "hi")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let answer =
        site.form(&bob, &format!("{path}/comments"), &[("text", "<script>alert(1)</script>\nsecond line")]).await;
    assert_eq!((answer.status, answer.location.as_str()), (StatusCode::SEE_OTHER, format!("{path}#activity").as_str()));
    let empty = site.form(&bob, &format!("{path}/comments"), &[("text", "  ")]).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.body.contains("needs some text"), "{}", empty.body);

    let answer = site.form(&bob, &format!("{path}/assign"), &[("assignee", "ann@example.com")]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let wrong = site.form(&bob, &format!("{path}/assign"), &[("assignee", "eve@example.com")]).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.body.contains("eve@example.com is not a member"), "{}", wrong.body);
    site.form(&ann, &format!("{path}/status"), &[("status", "resolved")]).await;

    let page = site.page(&bob, &path).await;
    assert!(page.body.contains("<option value=\"ann@example.com\" selected>"), "the picker shows the assignee");
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"), "comments are escaped");
    assert!(!page.body.contains("<script>alert(1)"));
    let order: Vec<_> = ["resolved the issue", "assigned the issue to ann@example.com", "commented"]
        .iter()
        .map(|text| page.body.find(text).unwrap_or_else(|| panic!("{text} missing")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "newest first: {order:?}");

    // Another organisation's issue: not found, for the page and the forms.
    assert_eq!(site.page(&eve, &path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(site.form(&eve, &format!("{path}/comments"), &[("text", "x")]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(site.form(&eve, &format!("{path}/assign"), &[("assignee", "")]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_issue_list_assigns_in_bulk_within_the_project() {
    let (site, ann, _bob, _eve) = site().await;
    let bulk = "/projects/acme/web/issues/bulk";
    let issue = site.issue.to_string();
    let answer =
        site.form(&ann, bulk, &[("action", "assign"), ("assignee", "bob@example.com"), ("issue", &issue)]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let detail =
        site.store.issue_detail(store::Viewer { user_id: 0, is_admin: true }, site.issue).await.unwrap().unwrap();
    assert_eq!(detail.issue.assignee.as_deref(), Some("bob@example.com"));
    let list = site.page(&ann, "/projects/acme/web").await;
    assert!(list.body.contains("title=\"Assigned to bob@example.com\""), "{}", list.body);
    let theirs = site.theirs.to_string();
    let answer = site.form(&ann, bulk, &[("action", "assign"), ("assignee", ""), ("issue", &theirs)]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admins_see_pending_invitations_and_revoke_them() {
    let (site, ann, bob, _eve) = site().await;
    let now = clock::now_millis();
    let invitation = Invitation {
        org_slug: "acme".into(),
        email: "new@example.com".into(),
        role: Role::Member,
        expires_at: now + 86_400_000,
    };
    site.store.create_invitation("hash-new", &invitation, now).await.unwrap();
    let page = site.page(&ann, "/settings/orgs/acme").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Pending invitations"));
    assert!(page.body.contains("<td>new@example.com</td>"), "{}", page.body);
    let members_view = site.page(&bob, "/settings/orgs/acme").await;
    assert!(!members_view.body.contains("Pending invitations"), "for admins only");
    let refused = site.form(&bob, "/settings/orgs/acme/invitations/revoke", &[("email", "new@example.com")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let answer = site.form(&ann, "/settings/orgs/acme/invitations/revoke", &[("email", "new@example.com")]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("The invitation to new@example.com is revoked"), "{}", answer.body);
    assert!(!answer.body.contains("<td>new@example.com</td>"));
    assert!(site.store.invitation("hash-new", now).await.unwrap().is_none());
    let again = site.form(&ann, "/settings/orgs/acme/invitations/revoke", &[("email", "new@example.com")]).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.body.contains("no pending invitation to new@example.com"), "{}", again.body);
}

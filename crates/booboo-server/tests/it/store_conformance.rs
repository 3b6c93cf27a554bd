//! The store's behaviour, backend by backend. `store_tests!` turns each
//! `async fn(Arc<dyn Store>)` into one test per backend; the PostgreSQL ones
//! skip with a note when BOOBOO_TEST_DATABASE_URL is unset and fail when it
//! is set but unusable.

use crate::support::*;
use booboo_server::store::{IssueFilter, IssueSort, IssueStatus, Page, Role, Store, StoreError, StoreOutcome, Viewer};
use serde_json::json;
use std::sync::Arc;

macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _dir) = crate::support::sqlite_store().await;
                    super::$name(store).await;
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
                    super::$name(db.store.clone()).await;
                    db.drop().await;
                }
            )*
        }
    };
}

store_tests!(
    ingest_tokens_find_their_project_only_while_live,
    events_of_one_fingerprint_share_an_issue_with_exact_counts,
    a_repeated_event_id_is_stored_once,
    a_new_event_reopens_a_resolved_issue_as_a_regression,
    issues_filter_sort_and_page,
    readers_see_only_their_organisations,
    duplicate_projects_and_users_are_conflicts,
    handshakes_mark_the_project_connected,
    concurrent_first_events_of_a_fingerprint_make_one_issue,
    events_list_newest_first_and_are_found_by_id,
);

async fn project(store: &Arc<dyn Store>, org: &str, slug: &str) -> i64 {
    let token = format!("{:032x}", rand_u128());
    store.create_project(org, slug, &token, T0).await.unwrap().0.id
}

async fn ingest_tokens_find_their_project_only_while_live(store: Arc<dyn Store>) {
    let (project, key) = store.create_project("acme", "web", "0123456789abcdef0123456789abcdef", T0).await.unwrap();
    assert_eq!(store.ingest_target(&key.token).await.unwrap().unwrap().project_id, project.id);
    assert!(store.ingest_target("ffffffffffffffffffffffffffffffff").await.unwrap().is_none());
    let (_, keys) = store.project_with_keys("acme", "web").await.unwrap().unwrap();
    assert_eq!(keys.len(), 1);
}

async fn events_of_one_fingerprint_share_an_issue_with_exact_counts(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let batch = vec![
        new_event(p, T0, &body("pay", json!({"context": {"user": {"id": "u1"}}, "release": ""}))),
        new_event(
            p,
            T0 + 1000,
            &body("pay", json!({"context": {"user": {"email": "b@x.io"}}, "release": "1.1", "environment": "staging"})),
        ),
        new_event(
            p,
            T0 + 2000,
            &body("pay", json!({"context": {"user": {"id": "u1"}}, "release": "1.2", "tags": {"browser": "firefox"}})),
        ),
        new_event(p, T0 + 500, &body("ship", json!({}))),
    ];
    let outcomes = store.store_events(&batch).await.unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, StoreOutcome::Stored { .. })));
    let filter = IssueFilter { status: None, sort: IssueSort::Events, ..IssueFilter::default() };
    let issues = store.list_issues(ADMIN, p, &filter, Page { offset: 0, limit: 10 }).await.unwrap().items;
    assert_eq!(issues.len(), 2);
    let pay = &issues[0];
    assert_eq!((pay.count, pay.users), (3, 2));
    assert_eq!((pay.first_seen, pay.last_seen), (T0, T0 + 2000));
    assert_eq!(pay.first_release.as_deref(), Some("1.1"));
    assert_eq!(pay.culprit, "pay in views.py");
    let detail = store.issue_detail(ADMIN, pay.id).await.unwrap().unwrap();
    assert_eq!(detail.issue.environments, vec!["production", "staging"]);
    assert_eq!(detail.environment_counts[0].count, 2);
    assert_eq!(detail.issue.releases, vec!["1.1", "1.2"]);
    let browser = detail.tags.iter().find(|t| t.key == "browser").unwrap();
    assert_eq!(browser.values[0].value, "firefox");
    // The third event's tags replaced the default ones.
    assert_eq!(detail.tags.iter().find(|t| t.key == "runtime").unwrap().values[0].count, 2);
}

async fn a_repeated_event_id_is_stored_once(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let event = new_event(p, T0, &body("pay", json!({"event_id": "0123456789abcdef0123456789abcdef"})));
    let first = store.store_events(&[event.clone(), event.clone()]).await.unwrap();
    assert!(matches!(first[0], StoreOutcome::Stored { .. }));
    assert_eq!(first[1], StoreOutcome::Duplicate);
    assert_eq!(store.store_events(&[event]).await.unwrap(), vec![StoreOutcome::Duplicate]);
    let issues =
        store.list_issues(ADMIN, p, &IssueFilter::default(), Page { offset: 0, limit: 10 }).await.unwrap().items;
    assert_eq!(issues[0].count, 1);
}

async fn a_new_event_reopens_a_resolved_issue_as_a_regression(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let outcome = store.store_events(&[new_event(p, T0, &body("pay", json!({})))]).await.unwrap();
    let StoreOutcome::Stored { issue_id } = outcome[0] else { panic!() };
    let resolved = store.set_issue_status(ADMIN, issue_id, IssueStatus::Resolved).await.unwrap().unwrap();
    assert_eq!(resolved.status, IssueStatus::Resolved);
    store.store_events(&[new_event(p, T0 + 10, &body("pay", json!({})))]).await.unwrap();
    let issue = store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap().issue;
    assert_eq!((issue.status, issue.is_regression, issue.count), (IssueStatus::Unresolved, true, 2));
    // Ignored issues stay ignored.
    store.set_issue_status(ADMIN, issue_id, IssueStatus::Ignored).await.unwrap();
    store.store_events(&[new_event(p, T0 + 20, &body("pay", json!({})))]).await.unwrap();
    assert_eq!(store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap().issue.status, IssueStatus::Ignored);
}

async fn issues_filter_sort_and_page(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let mut batch = Vec::new();
    for i in 0..6 {
        let env = if i % 2 == 0 { "production" } else { "staging" };
        let level = if i == 5 { "warning" } else { "error" };
        for n in 0..=i {
            batch.push(new_event(
                p,
                T0 + i * 100 + n,
                &body(&format!("step{i}"), json!({"environment": env, "release": format!("r{i}"), "level": level})),
            ));
        }
    }
    store.store_events(&batch).await.unwrap();
    let list = |filter: IssueFilter, offset, limit| {
        let store = store.clone();
        async move { store.list_issues(ADMIN, p, &filter, Page { offset, limit }).await.unwrap() }
    };
    let all = list(IssueFilter::default(), 0, 50).await.items;
    assert_eq!(all.iter().map(|i| i.count).collect::<Vec<_>>(), vec![6, 5, 4, 3, 2, 1], "last seen first");
    let staging = list(IssueFilter { environment: Some("staging".into()), ..Default::default() }, 0, 50).await.items;
    assert_eq!(staging.len(), 3);
    let r2 = list(IssueFilter { release: Some("r2".into()), ..Default::default() }, 0, 50).await.items;
    assert_eq!(r2.iter().map(|i| i.count).collect::<Vec<_>>(), vec![3]);
    let warnings = list(IssueFilter { level: Some("warning".into()), ..Default::default() }, 0, 50).await.items;
    assert_eq!(warnings.len(), 1);
    let text = list(IssueFilter { query: Some("STEP4".into()), ..Default::default() }, 0, 50).await.items;
    assert_eq!(text.len(), 1, "free text is case-insensitive over the culprit");
    let wildcard = list(IssueFilter { query: Some("%".into()), ..Default::default() }, 0, 50).await.items;
    assert!(wildcard.is_empty(), "LIKE wildcards in the query are literal");
    let first_seen = list(IssueFilter { sort: IssueSort::FirstSeen, ..Default::default() }, 0, 50).await.items;
    assert_eq!(first_seen[0].count, 6);
    let page1 = list(IssueFilter { sort: IssueSort::Events, ..Default::default() }, 0, 4).await;
    assert_eq!(page1.next_offset, Some(4));
    let page2 = list(IssueFilter { sort: IssueSort::Events, ..Default::default() }, 4, 4).await;
    assert_eq!(page2.items.iter().map(|i| i.count).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(page2.next_offset, None);
    let id = all[0].id;
    store.set_issue_status(ADMIN, id, IssueStatus::Resolved).await.unwrap();
    let unresolved = IssueFilter { status: Some(IssueStatus::Unresolved), ..Default::default() };
    assert_eq!(list(unresolved, 0, 50).await.items.len(), 5);
    let resolved = list(IssueFilter { status: Some(IssueStatus::Resolved), ..Default::default() }, 0, 50).await.items;
    assert_eq!(resolved.iter().map(|i| i.id).collect::<Vec<_>>(), vec![id]);
}

async fn readers_see_only_their_organisations(store: Arc<dyn Store>) {
    let mine = project(&store, "mine", "web").await;
    let theirs = project(&store, "theirs", "web").await;
    let user = store.create_user("me@example.com", "hash", false, T0).await.unwrap();
    store.set_membership("mine", user.id, Role::Member).await.unwrap();
    let me = user.viewer();
    let outcome = store.store_events(&[new_event(theirs, T0, &body("x", json!({})))]).await.unwrap();
    let StoreOutcome::Stored { issue_id } = outcome[0] else { panic!() };
    let projects = store.projects_for(me).await.unwrap();
    assert_eq!(projects.iter().map(|p| p.id).collect::<Vec<_>>(), vec![mine]);
    assert!(store.project_for(me, "theirs", "web").await.unwrap().is_none());
    assert!(store.issue_detail(me, issue_id).await.unwrap().is_none());
    assert!(store.set_issue_status(me, issue_id, IssueStatus::Resolved).await.unwrap().is_none());
    assert!(store.issue_events(me, issue_id, Page { offset: 0, limit: 5 }).await.unwrap().is_none());
    assert_eq!(
        store.list_issues(me, theirs, &IssueFilter::default(), Page { offset: 0, limit: 5 }).await.unwrap().items.len(),
        0
    );
    let stranger = Viewer { user_id: user.id + 1000, is_admin: false };
    assert!(store.projects_for(stranger).await.unwrap().is_empty());
    assert_eq!(store.projects_for(ADMIN).await.unwrap().len(), 2);
    let err = store.set_membership("nowhere", user.id, Role::Admin).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
}

async fn duplicate_projects_and_users_are_conflicts(store: Arc<dyn Store>) {
    project(&store, "acme", "web").await;
    let err = store.create_project("acme", "web", "another-token-aaaaaaaaaaaaaaaaaaa", T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    store.create_user("a@example.com", "h", false, T0).await.unwrap();
    let err = store.create_user("a@example.com", "h", false, T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.user_count().await.unwrap(), 1);
    let user = store.user_by_email("a@example.com").await.unwrap().unwrap();
    store.create_api_token(user.id, "hash-of-token", "cli", T0).await.unwrap();
    assert_eq!(store.user_for_api_token("hash-of-token").await.unwrap().unwrap().id, user.id);
    assert!(store.user_for_api_token("nope").await.unwrap().is_none());
}

async fn handshakes_mark_the_project_connected(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    store.record_handshake(p, "python/0.16.0", T0 + 5).await.unwrap();
    let project = store.project_for(ADMIN, "acme", "web").await.unwrap().unwrap();
    assert_eq!(project.connected_sdk.as_deref(), Some("python/0.16.0"));
    assert_eq!(project.connected_at, Some(T0 + 5));
    assert_eq!(project.last_event_at, None);
}

async fn concurrent_first_events_of_a_fingerprint_make_one_issue(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let batch: Vec<_> = (0..5)
                    .map(|n| {
                        new_event(
                            p,
                            T0 + i * 10 + n,
                            &body("race", json!({"context": {"user": {"id": format!("u{n}")}}})),
                        )
                    })
                    .collect();
                loop {
                    match store.store_events(&batch).await {
                        Ok(outcomes) => return outcomes,
                        // SQLite allows one writer; a busy database is retried
                        // like the ingest writer's clients would.
                        Err(StoreError::Unavailable(_)) => {
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let issues =
        store.list_issues(ADMIN, p, &IssueFilter::default(), Page { offset: 0, limit: 10 }).await.unwrap().items;
    assert_eq!(issues.len(), 1);
    assert_eq!((issues[0].count, issues[0].users), (40, 5));
    assert_eq!((issues[0].first_seen, issues[0].last_seen), (T0, T0 + 74));
}

async fn events_list_newest_first_and_are_found_by_id(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let batch: Vec<_> = (0..3).map(|i| new_event(p, T0 + i, &body("pay", json!({})))).collect();
    let outcomes = store.store_events(&batch).await.unwrap();
    let StoreOutcome::Stored { issue_id } = outcomes[0] else { panic!() };
    let page = store.issue_events(ADMIN, issue_id, Page { offset: 0, limit: 2 }).await.unwrap().unwrap();
    assert_eq!(page.items.iter().map(|e| e.received_at).collect::<Vec<_>>(), vec![T0 + 2, T0 + 1]);
    assert_eq!(page.next_offset, Some(2));
    let wanted = &batch[1].processed.event.event_id;
    let found = store.event(ADMIN, wanted).await.unwrap().unwrap();
    assert_eq!((&found.event_id, found.issue_id), (wanted, issue_id));
    let payload: serde_json::Value = serde_json::from_str(&found.payload).unwrap();
    assert_eq!(payload["exceptions"][0]["stacktrace"][0]["function"], "pay");
    assert!(store.event(ADMIN, "00000000000000000000000000000000").await.unwrap().is_none());
}

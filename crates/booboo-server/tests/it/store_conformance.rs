//! The store's behaviour, backend by backend. `store_tests!` turns each
//! `async fn(Arc<dyn Store>)` into one test per backend; the PostgreSQL ones
//! skip with a note when BOOBOO_TEST_DATABASE_URL is unset and fail when it
//! is set but unusable.

use crate::quota_store::*;
use crate::support::*;
use booboo_server::store::{
    AlertKind, AttemptResult, ChannelKind, IgnoreCondition, IgnoreUntil, Invitation, IssueFilter, IssueSort,
    IssueStatus, LimitChange, NewAlertRule, NewChannel, Page, ProjectLimits, ProjectLimitsPatch, Pruned, RateLimit,
    Role, RuleFilters, Session, SignInLimits, SignInReservation, Store, StoreError, StoreOutcome, Trigger, Viewer,
};
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

// Test files that use `store_tests!` too (declared after the macro).
mod issue_merges;
// Resolving in a release, with the macro above.
mod resolve;
// Ownership and history (assignees, comments, activity, invitations).
mod ownership;
// A batch stores what one-by-one storage would.
mod batching;
// Payload dictionaries.
mod dictionaries;

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
    a_setup_link_creates_the_first_administrator_once,
    sessions_last_until_they_expire_end_or_the_password_changes,
    a_setup_link_expires,
    sign_in_checks_are_reserved_per_address_and_account,
    parallel_sign_ins_never_reserve_more_than_the_limit,
    password_links_set_a_password_once_and_end_sessions,
    expired_sessions_links_and_counters_are_pruned,
    roles_members_and_removal,
    invitations_are_used_once_and_expire,
    api_tokens_are_listed_and_revoked_by_their_owner_only,
    users_creating_projects_admin_new_organisations_only,
    project_keys_are_listed_added_and_revoked_at_once,
    charts_filters_and_event_navigation_read_what_was_stored,
    an_export_reads_one_cut_in_pages,
    deleting_an_issue_or_a_project_removes_what_was_stored_for_it,
    lookups_by_text_with_nul_find_nothing_rather_than_fail,
    text_with_nul_characters_is_stored_and_found,
    alert_rules_are_created_listed_changed_and_deleted_within_access,
    new_issue_and_regression_rules_write_one_delivery_per_channel_with_the_event,
    frequency_rules_fire_once_per_throttle_per_issue_and_honour_filters,
    an_ignore_until_more_events_or_users_ends_with_the_event_that_reaches_it,
    a_timed_ignore_ends_once_at_its_time_and_a_manual_unignore_fires_nothing,
    each_due_delivery_is_claimed_once_and_retried_until_sent,
    alert_emails_go_to_members_who_did_not_opt_out_within_a_cap_with_a_digest,
    users_rules_count_distinct_users_within_the_window,
    email_alerts_are_one_delivery_per_recipient,
    project_limits_are_read_with_the_project_and_changed_by_admins_only,
    // Quotas that keep counting: `quota_store.rs`.
    a_rate_limited_project_keeps_exact_counts_while_storing_only_its_quota,
    the_installation_rate_limit_counts_all_projects_together,
    the_spike_guard_caps_an_hour_at_its_floor_without_history,
);

/// Stores `batch`, trying again while the database is busy: SQLite allows
/// one writer, and a busy database is retried as the ingest writer's
/// clients would.
async fn store_retrying_while_busy(
    store: &Arc<dyn Store>,
    batch: &[booboo_server::store::NewEvent],
) -> Vec<StoreOutcome> {
    loop {
        match store.store_events(batch).await {
            Ok(outcomes) => return outcomes,
            Err(StoreError::Unavailable(_)) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            Err(e) => panic!("{e}"),
        }
    }
}

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
                store_retrying_while_busy(&store, &batch).await
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

async fn lookups_by_text_with_nul_find_nothing_rather_than_fail(store: Arc<dyn Store>) {
    project(&store, "acme", "web").await;
    assert!(store.project_for(ADMIN, "acme\0", "web").await.unwrap().is_none());
    assert!(store.project_for(ADMIN, "acme", "w\0eb").await.unwrap().is_none());
    assert!(store.role_in(ADMIN, "ac\0me").await.unwrap().is_none());
    assert!(store.user_by_email("a\0@example.com").await.unwrap().is_none());
}

async fn deleting_an_issue_or_a_project_removes_what_was_stored_for_it(store: Arc<dyn Store>) {
    let hash = "unused";
    let owner = store.create_user("owner@example.com", hash, false, T0).await.unwrap();
    let member = store.create_user("member@example.com", hash, false, T0).await.unwrap();
    let (p, key) =
        store.create_project_for(owner.viewer(), "acme", "web", &format!("{:032x}", rand_u128()), T0).await.unwrap();
    store.set_membership("acme", member.id, Role::Member).await.unwrap();
    let batch: Vec<_> = (0..3).map(|i| new_event(p.id, T0 + i, &body("pay", json!({})))).collect();
    let StoreOutcome::Stored { issue_id } = store.store_events(&batch).await.unwrap()[0] else { panic!() };
    let other = store.store_events(&[new_event(p.id, T0, &body("ship", json!({})))]).await.unwrap();

    assert!(matches!(store.delete_issue(member.viewer(), issue_id).await, Err(StoreError::Forbidden(_))));
    let stranger = Viewer { user_id: member.id + 1000, is_admin: false };
    assert!(!store.delete_issue(stranger, issue_id).await.unwrap(), "invisible issues are not found");
    assert!(store.delete_issue(owner.viewer(), issue_id).await.unwrap());
    assert!(store.issue_detail(ADMIN, issue_id).await.unwrap().is_none());
    for event in &batch {
        assert!(store.event(ADMIN, &event.processed.event.event_id).await.unwrap().is_none());
    }
    // The same error again starts a new issue with its own count.
    let again = store.store_events(&[new_event(p.id, T0 + 9, &body("pay", json!({})))]).await.unwrap();
    let StoreOutcome::Stored { issue_id: new_issue } = again[0] else { panic!() };
    assert_ne!(new_issue, issue_id);
    assert_eq!(store.issue_detail(ADMIN, new_issue).await.unwrap().unwrap().issue.count, 1);
    assert!(matches!(other[0], StoreOutcome::Stored { .. }));

    assert!(matches!(store.delete_project(member.viewer(), p.id, T0).await, Err(StoreError::Forbidden(_))));
    assert!(store.delete_project(owner.viewer(), p.id, T0).await.unwrap());
    assert!(store.project_for(ADMIN, "acme", "web").await.unwrap().is_none());
    assert!(store.ingest_target(&key.token).await.unwrap().is_none());
    assert!(store.issue_detail(ADMIN, new_issue).await.unwrap().is_none());
}

async fn an_export_reads_one_cut_in_pages(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let other = project(&store, "acme", "api").await;
    let batch: Vec<_> = (0..5).map(|i| new_event(p, T0 + i, &body(&format!("f{}", i % 2), json!({})))).collect();
    store.store_events(&batch).await.unwrap();
    store.store_events(&[new_event(other, T0, &body("elsewhere", json!({})))]).await.unwrap();
    let marks = store.export_marks(p).await.unwrap();
    // Arriving after the cut: not part of this export.
    store.store_events(&[new_event(p, T0 + 9, &body("late", json!({})))]).await.unwrap();

    let mut issues = Vec::new();
    let mut after = 0;
    loop {
        let page = store.export_issues(p, after, marks.last_issue_id, 1).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        issues.extend(page);
    }
    let mut counts: Vec<_> = issues.iter().map(|i| i.count).collect();
    counts.sort();
    assert_eq!(counts, vec![2, 3]);
    assert!(issues.windows(2).all(|w| w[0].id < w[1].id), "issues in id order");
    assert!(issues.iter().all(|i| i.project_id == p));

    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store.export_events(p, after, marks.last_event_row, 2).await.unwrap();
        let Some((row, _)) = page.last() else { break };
        after = *row;
        events.extend(page.into_iter().map(|(_, e)| e.event_id));
    }
    let mut wanted: Vec<_> = batch.iter().map(|e| e.processed.event.event_id.clone()).collect();
    wanted.sort();
    events.sort();
    assert_eq!(events, wanted, "every event before the cut, once");
}

// --- the dashboard's verbs ------------------------------------------------------

async fn a_setup_link_creates_the_first_administrator_once(store: Arc<dyn Store>) {
    store.add_setup_token("hash-a", T0, T0 + DAY).await.unwrap();
    store.add_setup_token("hash-b", T0, T0 + DAY).await.unwrap();
    assert!(store.setup_token_valid("hash-a", T0).await.unwrap());
    assert!(!store.setup_token_valid("hash-x", T0).await.unwrap());
    let err = store.create_first_admin("hash-x", "a@example.com", "h", T0).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(store.user_count().await.unwrap(), 0);
    let admin = store.create_first_admin("hash-b", "a@example.com", "h", T0).await.unwrap();
    assert!(admin.is_admin);
    // Every link is spent once an administrator exists.
    assert!(!store.setup_token_valid("hash-a", T0).await.unwrap());
    let err = store.create_first_admin("hash-a", "b@example.com", "h", T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.user_count().await.unwrap(), 1);
}

fn session(csrf: &str, expires_at: i64) -> Session {
    Session { user_id: 0, csrf_token: csrf.into(), created_at: T0, expires_at }
}

async fn sessions_last_until_they_expire_end_or_the_password_changes(store: Arc<dyn Store>) {
    let user = store.create_user("a@example.com", "old", false, T0).await.unwrap();
    store.create_session("s1", user.id, &session("c1", T0 + 1000)).await.unwrap();
    store.create_session("s2", user.id, &session("c2", T0 + 1000)).await.unwrap();
    store.create_session("s3", user.id, &session("c3", T0 + 1000)).await.unwrap();
    let (found, s) = store.session("s1", T0).await.unwrap().unwrap();
    assert_eq!((found.id, s.csrf_token.as_str(), s.expires_at), (user.id, "c1", T0 + 1000));
    assert!(store.session("s1", T0 + 1000).await.unwrap().is_none(), "expired");
    assert!(store.session("nope", T0).await.unwrap().is_none());
    store.end_session("s2").await.unwrap();
    assert!(store.session("s2", T0).await.unwrap().is_none());
    store.set_password(user.id, "new", "s1").await.unwrap();
    let (found, _) = store.session("s1", T0).await.unwrap().unwrap();
    assert_eq!(found.password_hash, "new");
    assert!(store.session("s3", T0).await.unwrap().is_none(), "other sessions end with a password change");
}

const DAY: i64 = 86_400_000;

async fn a_setup_link_expires(store: Arc<dyn Store>) {
    store.add_setup_token("hash-a", T0, T0 + DAY).await.unwrap();
    assert!(store.setup_token_valid("hash-a", T0 + DAY - 1).await.unwrap());
    assert!(!store.setup_token_valid("hash-a", T0 + DAY).await.unwrap());
    let err = store.create_first_admin("hash-a", "a@example.com", "h", T0 + DAY).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(store.user_count().await.unwrap(), 0);
}

const LIMITS: SignInLimits =
    SignInLimits { window_ms: 60_000, checks_per_address: 4, checks_per_account: 2, slowed_interval_ms: 1000 };

async fn sign_in_checks_are_reserved_per_address_and_account(store: Arc<dyn Store>) {
    let reserve = |address: &'static str, account: &'static str, at: i64| {
        let store = store.clone();
        async move { store.reserve_sign_in(address, account, &LIMITS, at).await.unwrap() }
    };
    use SignInReservation::*;
    // Two checks at full speed, then one a second: slowed, never locked.
    assert_eq!(reserve("address:a", "account:x", T0).await, Granted);
    assert_eq!(reserve("address:a", "account:x", T0 + 1).await, Granted);
    assert_eq!(reserve("address:b", "account:x", T0 + 2).await, Granted, "the first slowed check is due");
    assert_eq!(reserve("address:b", "account:x", T0 + 502).await, AccountSlowed { retry_after_ms: 500 });
    assert_eq!(reserve("address:c", "account:x", T0 + 1002).await, Granted, "due again a second later");
    // Address a has used two of its four checks; other accounts count too.
    assert_eq!(reserve("address:a", "account:y", T0 + 10).await, Granted);
    assert_eq!(reserve("address:a", "account:z", T0 + 20).await, Granted);
    assert_eq!(reserve("address:a", "account:w", T0 + 30).await, AddressLimited { retry_after_ms: 59_970 });
    // A success gives the address its check back and clears the account.
    store.sign_in_succeeded("address:a", "account:y").await.unwrap();
    assert_eq!(reserve("address:a", "account:w", T0 + 40).await, Granted);
    assert_eq!(reserve("address:a", "account:w", T0 + 50).await, AddressLimited { retry_after_ms: 59_950 });
    store.sign_in_succeeded("address:c", "account:x").await.unwrap();
    assert_eq!(reserve("address:d", "account:x", T0 + 1003).await, Granted, "the owner got in: full speed again");
    // A refused request changed nothing, and a new window starts afresh.
    assert_eq!(reserve("address:a", "account:v", T0 + 60_000).await, Granted);
}

async fn parallel_sign_ins_never_reserve_more_than_the_limit(store: Arc<dyn Store>) {
    let limits = SignInLimits { checks_per_address: 10, checks_per_account: 1000, ..LIMITS };
    let attempts = (0..60).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store.reserve_sign_in("address:10.0.0.1", &format!("account:{n}"), &limits, T0).await.unwrap()
        })
    });
    let mut granted = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.unwrap() {
            SignInReservation::Granted => granted += 1,
            SignInReservation::AddressLimited { retry_after_ms } => assert_eq!(retry_after_ms, 60_000),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(granted, 10, "exactly the limit, however the requests interleave");
    // The same for one account guessed at from many addresses at once.
    let attempts = (0..40).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store.reserve_sign_in(&format!("address:{n}"), "account:victim", &LIMITS, T0).await.unwrap()
        })
    });
    let mut granted = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        granted += (attempt.await.unwrap() == SignInReservation::Granted) as usize;
    }
    assert_eq!(granted, 3, "two at full speed, then one for this second");
}

async fn password_links_set_a_password_once_and_end_sessions(store: Arc<dyn Store>) {
    let user = store.create_user("a@example.com", "old", false, T0).await.unwrap();
    store.create_session("s1", user.id, &session("c1", T0 + DAY)).await.unwrap();
    store.create_password_link("link-1", user.id, T0, T0 + DAY).await.unwrap();
    store.create_password_link("link-2", user.id, T0, T0 + DAY).await.unwrap();
    store.create_password_link("link-old", user.id, T0, T0 + 10).await.unwrap();
    assert_eq!(store.password_link("link-1", T0).await.unwrap().unwrap().email, "a@example.com");
    assert!(store.password_link("link-old", T0 + 10).await.unwrap().is_none(), "expired");
    let err = store.use_password_link("link-old", "new", T0 + 10).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(store.use_password_link("nope", "new", T0).await.is_err());
    let changed = store.use_password_link("link-1", "new", T0 + 5).await.unwrap();
    assert_eq!((changed.id, changed.password_hash.as_str()), (user.id, "new"));
    assert!(store.session("s1", T0 + 6).await.unwrap().is_none(), "every session ends");
    assert!(store.use_password_link("link-1", "again", T0 + 6).await.is_err(), "used once");
    assert!(store.password_link("link-2", T0 + 6).await.unwrap().is_none(), "other links are void");
    // A password change voids open links too.
    store.create_password_link("link-3", user.id, T0, T0 + DAY).await.unwrap();
    store.set_password(user.id, "newer", "").await.unwrap();
    assert!(store.password_link("link-3", T0).await.unwrap().is_none());
    assert_eq!(store.user_by_email("a@example.com").await.unwrap().unwrap().password_hash, "newer");
}

async fn expired_sessions_links_and_counters_are_pruned(store: Arc<dyn Store>) {
    project(&store, "acme", "web").await;
    let user = store.create_user("a@example.com", "h", false, T0).await.unwrap();
    store.create_session("old", user.id, &session("c1", T0 + 10)).await.unwrap();
    store.create_session("live", user.id, &session("c2", T0 + DAY)).await.unwrap();
    store.add_setup_token("setup-old", T0, T0 + 10).await.unwrap();
    store.create_password_link("link-old", user.id, T0, T0 + 10).await.unwrap();
    store.create_password_link("link-live", user.id, T0, T0 + DAY).await.unwrap();
    let invitation = |email: &str, expires_at| Invitation {
        org_slug: "acme".into(),
        email: email.into(),
        role: Role::Member,
        expires_at,
    };
    store.create_invitation("inv-old", &invitation("b@example.com", T0 + 10), T0).await.unwrap();
    store.create_invitation("inv-live", &invitation("c@example.com", T0 + DAY), T0).await.unwrap();
    let limits = SignInLimits { window_ms: 10, ..LIMITS };
    store.reserve_sign_in("address:a", "account:x", &limits, T0).await.unwrap();
    let pruned = store.prune_expired(T0 + 10).await.unwrap();
    assert_eq!(pruned, Pruned { sessions: 1, links: 3, sign_in_limits: 2 });
    assert!(store.session("live", T0 + 10).await.unwrap().is_some());
    assert!(store.password_link("link-live", T0 + 10).await.unwrap().is_some());
    assert!(store.invitation("inv-live", T0 + 10).await.unwrap().is_some());
    assert_eq!(store.prune_expired(T0 + 10).await.unwrap(), Pruned::default(), "nothing left to prune");
}

async fn roles_members_and_removal(store: Arc<dyn Store>) {
    project(&store, "mine", "web").await;
    project(&store, "theirs", "web").await;
    let ann = store.create_user("ann@example.com", "h", false, T0).await.unwrap();
    let bob = store.create_user("bob@example.com", "h", false, T0).await.unwrap();
    store.set_membership("mine", ann.id, Role::Admin).await.unwrap();
    store.set_membership("mine", bob.id, Role::Member).await.unwrap();
    assert_eq!(store.role_in(ann.viewer(), "mine").await.unwrap(), Some(Role::Admin));
    assert_eq!(store.role_in(bob.viewer(), "mine").await.unwrap(), Some(Role::Member));
    assert_eq!(store.role_in(bob.viewer(), "theirs").await.unwrap(), None);
    assert_eq!(store.role_in(ADMIN, "theirs").await.unwrap(), Some(Role::Admin), "installation admins admin all");
    assert_eq!(store.role_in(ADMIN, "nowhere").await.unwrap(), None);
    let orgs = store.organisations_for(bob.viewer()).await.unwrap();
    assert_eq!(orgs.iter().map(|o| (o.org_slug.as_str(), o.role)).collect::<Vec<_>>(), [("mine", Role::Member)]);
    assert_eq!(store.organisations_for(ADMIN).await.unwrap().len(), 2);
    let members = store.members_of(bob.viewer(), "mine").await.unwrap().unwrap();
    assert_eq!(
        members.iter().map(|m| (m.email.as_str(), m.role)).collect::<Vec<_>>(),
        [("ann@example.com", Role::Admin), ("bob@example.com", Role::Member)]
    );
    assert!(store.members_of(bob.viewer(), "theirs").await.unwrap().is_none());
    assert!(store.remove_membership("mine", bob.id).await.unwrap());
    assert!(!store.remove_membership("mine", bob.id).await.unwrap());
    assert!(store.projects_for(bob.viewer()).await.unwrap().is_empty());
}

async fn invitations_are_used_once_and_expire(store: Arc<dyn Store>) {
    project(&store, "acme", "web").await;
    let invitation = Invitation {
        org_slug: "acme".into(),
        email: "new@example.com".into(),
        role: Role::Admin,
        expires_at: T0 + 100,
    };
    store.create_invitation("inv-1", &invitation, T0).await.unwrap();
    store.create_invitation("inv-2", &Invitation { expires_at: T0 + 5, ..invitation.clone() }, T0).await.unwrap();
    let missing = Invitation { org_slug: "nowhere".into(), ..invitation.clone() };
    assert!(matches!(store.create_invitation("inv-3", &missing, T0).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.invitation("inv-1", T0).await.unwrap(), Some(invitation.clone()));
    assert!(store.invitation("inv-2", T0 + 5).await.unwrap().is_none(), "expired");
    let err = store.accept_invitation("inv-2", "h", T0 + 5).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let (user, created) = store.accept_invitation("inv-1", "pw-hash", T0 + 1).await.unwrap();
    assert!(created);
    assert_eq!(
        (user.email.as_str(), user.password_hash.as_str(), user.is_admin),
        ("new@example.com", "pw-hash", false)
    );
    assert_eq!(store.role_in(user.viewer(), "acme").await.unwrap(), Some(Role::Admin));
    assert!(store.invitation("inv-1", T0 + 1).await.unwrap().is_none(), "used up");
    assert!(store.accept_invitation("inv-1", "other", T0 + 2).await.is_err());
    // An invitation for someone who has an account keeps their password.
    store.create_invitation("inv-4", &Invitation { role: Role::Member, ..invitation }, T0).await.unwrap();
    let (same, created) = store.accept_invitation("inv-4", "ignored", T0 + 3).await.unwrap();
    assert!(!created);
    assert_eq!((same.id, same.password_hash.as_str()), (user.id, "pw-hash"));
    assert_eq!(store.role_in(user.viewer(), "acme").await.unwrap(), Some(Role::Member));
}

async fn api_tokens_are_listed_and_revoked_by_their_owner_only(store: Arc<dyn Store>) {
    let ann = store.create_user("ann@example.com", "h", false, T0).await.unwrap();
    let bob = store.create_user("bob@example.com", "h", false, T0).await.unwrap();
    store.create_api_token(ann.id, "t1", "ci", T0).await.unwrap();
    store.create_api_token(ann.id, "t2", "laptop", T0 + 1).await.unwrap();
    let tokens = store.api_tokens_of(ann.id).await.unwrap();
    assert_eq!(tokens.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(), ["ci", "laptop"]);
    assert!(store.api_tokens_of(bob.id).await.unwrap().is_empty());
    assert!(!store.revoke_api_token(bob.id, tokens[0].id, T0 + 5).await.unwrap(), "not bob's to revoke");
    assert!(store.revoke_api_token(ann.id, tokens[0].id, T0 + 5).await.unwrap());
    assert!(!store.revoke_api_token(ann.id, tokens[0].id, T0 + 6).await.unwrap(), "already revoked");
    assert!(store.user_for_api_token("t1").await.unwrap().is_none());
    assert!(store.user_for_api_token("t2").await.unwrap().is_some());
    assert_eq!(store.api_tokens_of(ann.id).await.unwrap()[0].revoked_at, Some(T0 + 5));
}

async fn users_creating_projects_admin_new_organisations_only(store: Arc<dyn Store>) {
    let ann = store.create_user("ann@example.com", "h", false, T0).await.unwrap();
    let bob = store.create_user("bob@example.com", "h", false, T0).await.unwrap();
    let (project, key) = store.create_project_for(ann.viewer(), "acme", "web", "tok-1", T0).await.unwrap();
    assert_eq!((project.org_slug.as_str(), project.slug.as_str(), key.token.as_str()), ("acme", "web", "tok-1"));
    assert_eq!(store.role_in(ann.viewer(), "acme").await.unwrap(), Some(Role::Admin));
    let err = store.create_project_for(bob.viewer(), "acme", "api", "tok-2", T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
    store.set_membership("acme", bob.id, Role::Member).await.unwrap();
    let err = store.create_project_for(bob.viewer(), "acme", "api", "tok-2", T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "members cannot create projects: {err}");
    let err = store.create_project_for(ann.viewer(), "acme", "web", "tok-3", T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    store.create_project_for(ann.viewer(), "acme", "api", "tok-4", T0).await.unwrap();
    store.create_project_for(ADMIN, "acme", "jobs", "tok-5", T0).await.unwrap();
    assert_eq!(store.projects_for(bob.viewer()).await.unwrap().len(), 3);
    assert!(store.ingest_target("tok-2").await.unwrap().is_none(), "a refused project leaves nothing behind");
}

async fn project_keys_are_listed_added_and_revoked_at_once(store: Arc<dyn Store>) {
    let (project, first) = store.create_project("acme", "web", "tok-first", T0).await.unwrap();
    let p = project.id;
    let outsider = store.create_user("out@example.com", "h", false, T0).await.unwrap().viewer();
    let second = store.add_project_key(ADMIN, p, "tok-second", "worker", T0 + 1).await.unwrap().unwrap();
    assert_eq!(second.label, "worker");
    assert!(store.add_project_key(outsider, p, "tok-x", "x", T0).await.unwrap().is_none());
    assert!(store.project_keys(outsider, p).await.unwrap().is_none());
    assert!(!store.revoke_project_key(outsider, p, first.id, T0 + 2).await.unwrap());
    assert!(store.revoke_project_key(ADMIN, p, first.id, T0 + 2).await.unwrap());
    assert!(!store.revoke_project_key(ADMIN, p, first.id, T0 + 3).await.unwrap(), "already revoked");
    assert!(store.ingest_target("tok-first").await.unwrap().is_none(), "a revoked key is refused at once");
    assert_eq!(store.ingest_target("tok-second").await.unwrap().unwrap().project_id, p);
    let keys = store.project_keys(ADMIN, p).await.unwrap().unwrap();
    assert_eq!(
        keys.iter().map(|k| (k.token.as_str(), k.revoked_at)).collect::<Vec<_>>(),
        [("tok-first", Some(T0 + 2)), ("tok-second", None)]
    );
    // A key id of another project does not work through this one.
    let (other, other_key) = store.create_project("acme", "api", "tok-other", T0).await.unwrap();
    assert!(!store.revoke_project_key(ADMIN, p, other_key.id, T0).await.unwrap());
    assert!(store.ingest_target("tok-other").await.unwrap().is_some());
    assert_eq!(other.org_slug, "acme");
}

async fn charts_filters_and_event_navigation_read_what_was_stored(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let hour = 3_600_000;
    let batch = vec![
        new_event(p, T0, &body("pay", json!({"environment": "production", "release": "1.0"}))),
        new_event(p, T0 + 10, &body("pay", json!({"environment": "staging", "release": "1.1"}))),
        new_event(p, T0 + 2 * hour, &body("pay", json!({"environment": "production", "release": "1.1"}))),
        new_event(p, T0 + 2 * hour, &body("ship", json!({"environment": "", "release": ""}))),
    ];
    let ids: Vec<String> = batch.iter().map(|e| e.processed.event.event_id.clone()).collect();
    let outcomes = store.store_events(&batch).await.unwrap();
    let StoreOutcome::Stored { issue_id: pay } = outcomes[0] else { panic!() };
    let StoreOutcome::Stored { issue_id: ship } = outcomes[3] else { panic!() };
    let first_hour = T0 / hour;
    let counts = store.issue_hourly(ADMIN, p, &[pay, ship], first_hour).await.unwrap();
    let pairs: Vec<_> = counts.iter().map(|c| (c.issue_id == pay, c.hour - first_hour, c.count)).collect();
    assert!(pairs.contains(&(true, 0, 2)) && pairs.contains(&(true, 2, 1)) && pairs.contains(&(false, 2, 1)));
    assert_eq!(store.issue_hourly(ADMIN, p, &[pay], first_hour + 1).await.unwrap().len(), 1, "since an hour");
    let outsider = store.create_user("out@example.com", "h", false, T0).await.unwrap().viewer();
    assert!(store.issue_hourly(outsider, p, &[pay], first_hour).await.unwrap().is_empty());

    let facets = store.project_facets(ADMIN, p).await.unwrap();
    assert_eq!(facets.environments, ["", "production", "staging"]);
    assert_eq!(facets.releases, ["1.1", "1.0"], "newest release first");
    assert_eq!(store.project_facets(outsider, p).await.unwrap().environments.len(), 0);

    let latest = store.issue_event(ADMIN, pay, None).await.unwrap().unwrap();
    assert_eq!(latest.event.event_id, ids[2]);
    assert_eq!((latest.older.as_deref(), latest.newer.as_deref()), (Some(ids[1].as_str()), None));
    let middle = store.issue_event(ADMIN, pay, Some(&ids[1])).await.unwrap().unwrap();
    assert_eq!((middle.older.as_deref(), middle.newer.as_deref()), (Some(ids[0].as_str()), Some(ids[2].as_str())));
    let oldest = store.issue_event(ADMIN, pay, Some(&ids[0])).await.unwrap().unwrap();
    assert_eq!(oldest.older, None);
    assert!(store.issue_event(ADMIN, pay, Some(&ids[3])).await.unwrap().is_none(), "an event of another issue");
    assert!(store.issue_event(outsider, pay, None).await.unwrap().is_none());
}

/// JSON and SQLite allow U+0000 in text, PostgreSQL does not: an event
/// carrying one in any field that becomes a column is stored, in the same
/// batch as its neighbours, and found again by the text it was sent with.
async fn text_with_nul_characters_is_stored_and_found(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let plain = new_event(p, T0, &body("pay", json!({})));
    let nul = new_event(
        p,
        T0 + 1,
        &body(
            "refund",
            json!({"message": "bad byte \u{0}here", "environment": "prod\u{0}", "release": "1.0\u{0}",
                   "tags": {"k\u{0}": "v\u{0}"}, "context": {"user": {"id": "u\u{0}1"}}}),
        ),
    );
    let nul_id = nul.processed.event.event_id.clone();
    let outcomes = store.store_events(&[plain, nul]).await.expect("a NUL character must not fail the batch");
    assert!(outcomes.iter().all(|o| matches!(o, StoreOutcome::Stored { .. })), "{outcomes:?}");

    let event = store.event(ADMIN, &nul_id).await.unwrap().unwrap();
    let payload: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
    assert_eq!(payload["message"], "bad byte \u{0}here");
    assert_eq!(payload["environment"], "prod\u{0}");

    let filter = IssueFilter { environment: Some("prod\u{0}".into()), ..IssueFilter::default() };
    let found = store.list_issues(ADMIN, p, &filter, Page { offset: 0, limit: 10 }).await.unwrap().items;
    assert_eq!(found.len(), 1);
    assert!(found[0].title.contains("bad byte"), "{}", found[0].title);
    assert_eq!(found[0].releases.len(), 1);
}

fn alert_rule(trigger: Trigger, channels: usize) -> NewAlertRule {
    NewAlertRule {
        name: "rule".into(),
        trigger,
        filters: RuleFilters::default(),
        throttle_ms: trigger.threshold_and_window().1,
        channels: (0..channels)
            .map(|i| NewChannel {
                kind: ChannelKind::Webhook,
                target: format!("https://example.com/hook/{i}"),
                secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            })
            .collect(),
    }
}

async fn alert_rules_are_created_listed_changed_and_deleted_within_access(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let rule = store.create_alert_rule(p, &alert_rule(Trigger::NewIssue, 2), T0).await.unwrap();
    assert_eq!(rule.channels.len(), 2);
    assert_eq!(rule.channels[0].secret.as_deref(), Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert_eq!(store.alert_rules(p).await.unwrap().len(), 1);
    let stranger = store.create_user("x@example.com", "h", false, T0).await.unwrap().viewer();
    assert!(store.alert_rule(stranger, rule.id).await.unwrap().is_none());
    assert!(!store.delete_alert_rule(stranger, rule.id).await.unwrap());
    let mut changed = alert_rule(Trigger::Frequency { count: 5, window_ms: 60_000 }, 1);
    changed.filters.environments = vec!["production".into()];
    // The first channel is kept (same kind and target), the second dropped.
    let updated = store.update_alert_rule(ADMIN, rule.id, &changed, true).await.unwrap().unwrap();
    assert_eq!(updated.trigger, Trigger::Frequency { count: 5, window_ms: 60_000 });
    assert_eq!(updated.filters.environments, vec!["production".to_string()]);
    assert_eq!(updated.channels.iter().map(|c| c.id).collect::<Vec<_>>(), vec![rule.channels[0].id]);
    store.record_channel_result(rule.channels[0].id, T0, Some(500), Some("answered 500")).await.unwrap();
    let failed = store.alert_rule(ADMIN, rule.id).await.unwrap().unwrap();
    assert_eq!(failed.channels[0].last_failure.as_ref().unwrap().status, Some(500));
    store.record_channel_result(rule.channels[0].id, T0, Some(200), None).await.unwrap();
    assert!(store.alert_rule(ADMIN, rule.id).await.unwrap().unwrap().channels[0].last_failure.is_none());
    assert!(store.delete_alert_rule(ADMIN, rule.id).await.unwrap());
    assert!(store.alert_rules(p).await.unwrap().is_empty());
}

async fn new_issue_and_regression_rules_write_one_delivery_per_channel_with_the_event(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let quiet = project(&store, "acme", "quiet").await;
    store.create_alert_rule(p, &alert_rule(Trigger::NewIssue, 2), T0).await.unwrap();
    store.create_alert_rule(p, &alert_rule(Trigger::Regression, 1), T0).await.unwrap();
    let first = new_event(p, T0, &body("pay", json!({})));
    let StoreOutcome::Stored { issue_id } = store.store_events(std::slice::from_ref(&first)).await.unwrap()[0] else {
        panic!()
    };
    store
        .store_events(&[new_event(p, T0 + 1, &body("pay", json!({}))), new_event(quiet, T0, &body("pay", json!({})))])
        .await
        .unwrap();
    let deliveries = store.project_deliveries(p, 50).await.unwrap();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert!(deliveries.iter().all(|d| d.kind == "issue.new" && d.issue_id == Some(issue_id) && d.status == "pending"));
    assert_ne!(deliveries[0].webhook_id, deliveries[1].webhook_id);
    assert!(store.project_deliveries(quiet, 50).await.unwrap().is_empty());
    // A manual reopen is no regression; a new event on a resolved issue is.
    store.set_issue_status(ADMIN, issue_id, IssueStatus::Resolved).await.unwrap();
    store.set_issue_status(ADMIN, issue_id, IssueStatus::Unresolved).await.unwrap();
    store.store_events(&[new_event(p, T0 + 2, &body("pay", json!({})))]).await.unwrap();
    assert_eq!(store.project_deliveries(p, 50).await.unwrap().len(), 2);
    store.set_issue_status(ADMIN, issue_id, IssueStatus::Resolved).await.unwrap();
    store.store_events(&[new_event(p, T0 + 3, &body("pay", json!({})))]).await.unwrap();
    let deliveries = store.issue_deliveries(issue_id, 50).await.unwrap();
    assert_eq!(deliveries.len(), 3);
    assert_eq!(deliveries[0].kind, "issue.regression");
    // The claimed delivery carries the event that triggered it.
    let due = store.claim_deliveries("n1", T0 + 10, 60_000, 10).await.unwrap();
    assert_eq!(due.len(), 3);
    let new = due.iter().find(|d| d.kind == AlertKind::New).unwrap();
    assert_eq!(new.event.as_ref().unwrap().event_id, first.processed.event.event_id);
    assert_eq!(new.issue.as_ref().unwrap().id, issue_id);
    assert_eq!(new.project.slug, "web");
}

async fn frequency_rules_fire_once_per_throttle_per_issue_and_honour_filters(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let mut rule = alert_rule(Trigger::Frequency { count: 3, window_ms: 60_000 }, 1);
    rule.filters.environments = vec!["production".into()];
    store.create_alert_rule(p, &rule, T0).await.unwrap();
    let at = |t: i64, function: &str, env: &str| new_event(p, T0 + t, &body(function, json!({"environment": env})));
    // Two events: below the count. Staging events do not count towards firing.
    store.store_events(&[at(0, "a", "production"), at(1, "a", "production"), at(2, "a", "staging")]).await.unwrap();
    assert!(store.project_deliveries(p, 50).await.unwrap().is_empty());
    // The third in production fires; more within the window are throttled.
    store.store_events(&[at(3, "a", "production")]).await.unwrap();
    store.store_events(&[at(4, "a", "production"), at(5, "a", "production")]).await.unwrap();
    assert_eq!(store.project_deliveries(p, 50).await.unwrap().len(), 1);
    // Another issue's storm is not silenced by the first one's throttle.
    store.store_events(&[at(6, "b", "production"), at(7, "b", "production"), at(8, "b", "production")]).await.unwrap();
    assert_eq!(store.project_deliveries(p, 50).await.unwrap().len(), 2);
    // Events spread beyond the window never reach the count.
    store.store_events(&[at(200_000, "c", "production"), at(300_000, "c", "production")]).await.unwrap();
    store.store_events(&[at(400_000, "c", "production")]).await.unwrap();
    assert_eq!(store.project_deliveries(p, 50).await.unwrap().len(), 2);
    // After the throttle, issue a fires again once the count is reached again.
    store
        .store_events(&[at(70_000, "a", "production"), at(70_001, "a", "production"), at(70_002, "a", "production")])
        .await
        .unwrap();
    let deliveries = store.project_deliveries(p, 50).await.unwrap();
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries.iter().all(|d| d.kind == "issue.frequency"));
}

async fn an_ignore_until_more_events_or_users_ends_with_the_event_that_reaches_it(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    store.create_alert_rule(p, &alert_rule(Trigger::Unignored, 1), T0).await.unwrap();
    let event = |t: i64, function: &str, user: &str| {
        new_event(p, T0 + t, &body(function, json!({"context": {"user": {"id": user}}})))
    };
    let StoreOutcome::Stored { issue_id } = store.store_events(&[event(0, "pay", "u1")]).await.unwrap()[0] else {
        panic!()
    };
    // Until 3 more events: the issue has 1, so the 4th ends it.
    let ignored = store.ignore_issue(ADMIN, issue_id, IgnoreCondition::Events(3), T0).await.unwrap().unwrap();
    assert_eq!((ignored.status, ignored.ignore_until.count), (IssueStatus::Ignored, Some(4)));
    store.store_events(&[event(1, "pay", "u1"), event(2, "pay", "u1")]).await.unwrap();
    let issue = store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap().issue;
    assert_eq!(issue.status, IssueStatus::Ignored);
    assert!(store.project_deliveries(p, 50).await.unwrap().is_empty());
    let third = event(3, "pay", "u1");
    store.store_events(std::slice::from_ref(&third)).await.unwrap();
    let issue = store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap().issue;
    assert_eq!((issue.status, issue.ignore_until), (IssueStatus::Unresolved, IgnoreUntil::default()));
    let deliveries = store.project_deliveries(p, 50).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!((deliveries[0].kind.as_str(), deliveries[0].issue_id), ("issue.unignored", Some(issue_id)));
    let due = store.claim_deliveries("n1", T0 + 10, 60_000, 10).await.unwrap();
    assert_eq!(due[0].event.as_ref().unwrap().event_id, third.processed.event.event_id);
    // More events after it ended fire nothing more.
    store.store_events(&[event(4, "pay", "u1")]).await.unwrap();
    assert_eq!(store.project_deliveries(p, 50).await.unwrap().len(), 1);

    // Until 2 more users: repeat users and events without one do not count.
    let StoreOutcome::Stored { issue_id: other } = store.store_events(&[event(10, "cart", "a")]).await.unwrap()[0]
    else {
        panic!()
    };
    store.ignore_issue(ADMIN, other, IgnoreCondition::Users(2), T0).await.unwrap().unwrap();
    store.store_events(&[event(11, "cart", "a"), event(12, "cart", "b")]).await.unwrap();
    store.store_events(&[new_event(p, T0 + 13, &body("cart", json!({})))]).await.unwrap();
    assert_eq!(store.issue_detail(ADMIN, other).await.unwrap().unwrap().issue.status, IssueStatus::Ignored);
    store.store_events(&[event(14, "cart", "c")]).await.unwrap();
    assert_eq!(store.issue_detail(ADMIN, other).await.unwrap().unwrap().issue.status, IssueStatus::Unresolved);
    let unignored = store.issue_deliveries(other, 50).await.unwrap();
    assert_eq!(unignored.len(), 1);
    assert_eq!(unignored[0].kind, "issue.unignored");
}

async fn a_timed_ignore_ends_once_at_its_time_and_a_manual_unignore_fires_nothing(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    store.create_alert_rule(p, &alert_rule(Trigger::Unignored, 1), T0).await.unwrap();
    let StoreOutcome::Stored { issue_id } =
        store.store_events(&[new_event(p, T0, &body("pay", json!({})))]).await.unwrap()[0]
    else {
        panic!()
    };
    // Ignored (forever, or for a time) and reopened by hand: no alert, and
    // the reopen cancels the timed ignore.
    store.set_issue_status(ADMIN, issue_id, IssueStatus::Ignored).await.unwrap();
    store.set_issue_status(ADMIN, issue_id, IssueStatus::Unresolved).await.unwrap();
    store.ignore_issue(ADMIN, issue_id, IgnoreCondition::For { ms: 60_000 }, T0).await.unwrap().unwrap();
    store.set_issue_status(ADMIN, issue_id, IssueStatus::Unresolved).await.unwrap();
    assert_eq!(store.end_expired_ignores(T0 + 120_000).await.unwrap(), 0);
    assert!(store.project_deliveries(p, 50).await.unwrap().is_empty());

    let ignored = store.ignore_issue(ADMIN, issue_id, IgnoreCondition::For { ms: 60_000 }, T0).await.unwrap().unwrap();
    assert_eq!(ignored.ignore_until.at, Some(T0 + 60_000));
    assert_eq!(store.end_expired_ignores(T0 + 59_999).await.unwrap(), 0);
    // Two nodes sweeping at the same moment: one of them ends it.
    let (a, b) = tokio::join!(store.end_expired_ignores(T0 + 60_000), store.end_expired_ignores(T0 + 60_000));
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    assert_eq!(store.end_expired_ignores(T0 + 60_001).await.unwrap(), 0);
    assert_eq!(store.issue_detail(ADMIN, issue_id).await.unwrap().unwrap().issue.status, IssueStatus::Unresolved);
    let deliveries = store.project_deliveries(p, 50).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!((deliveries[0].kind.as_str(), deliveries[0].issue_id), ("issue.unignored", Some(issue_id)));
}

async fn each_due_delivery_is_claimed_once_and_retried_until_sent(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let rule = store.create_alert_rule(p, &alert_rule(Trigger::NewIssue, 1), T0).await.unwrap();
    let batch: Vec<_> = (0..6).map(|i| new_event(p, T0, &body(&format!("f{i}"), json!({})))).collect();
    store.store_events(&batch).await.unwrap();
    // Two nodes claiming at once share the six deliveries without overlap.
    let (a, b) = tokio::join!(store.claim_deliveries("a", T0, 60_000, 4), store.claim_deliveries("b", T0, 60_000, 4));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|d| d.id).collect();
    assert_eq!(ids.len(), 6, "a: {}, b: {}", a.len(), b.len());
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    assert!(store.claim_deliveries("c", T0 + 1, 60_000, 10).await.unwrap().is_empty());
    let first = a[0].clone();
    // Only the node holding the claim records the attempt.
    let retry = AttemptResult::Retry { status: Some(500), detail: "answered 500".into(), next_attempt_at: T0 + 5_000 };
    assert!(!store.finish_delivery(first.id, "b", T0 + 1, &retry).await.unwrap());
    assert!(store.finish_delivery(first.id, "a", T0 + 1, &retry).await.unwrap());
    let channel = &store.alert_rule(ADMIN, rule.id).await.unwrap().unwrap().channels[0];
    assert_eq!(channel.last_failure.as_ref().unwrap().detail, "answered 500");
    assert!(store.claim_deliveries("c", T0 + 4_999, 60_000, 10).await.unwrap().is_empty());
    let again = store.claim_deliveries("c", T0 + 5_000, 60_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts, &again[0].webhook_id), (first.id, 1, &first.webhook_id));
    assert!(store
        .finish_delivery(first.id, "c", T0 + 5_001, &AttemptResult::Sent { status: Some(200) })
        .await
        .unwrap());
    assert!(store.alert_rule(ADMIN, rule.id).await.unwrap().unwrap().channels[0].last_failure.is_none());
    // A claim whose lease ran out (its node died mid-send) is taken over.
    let taken = store.claim_deliveries("d", T0 + 60_001, 60_000, 10).await.unwrap();
    assert_eq!(taken.len(), 5);
    let sent = store.project_deliveries(p, 50).await.unwrap().into_iter().find(|d| d.id == first.id).unwrap();
    assert_eq!((sent.status.as_str(), sent.attempts), ("sent", 2));
    assert_eq!(store.pending_deliveries().await.unwrap(), vec![("webhook".to_string(), 5)]);
}

async fn alert_emails_go_to_members_who_did_not_opt_out_within_a_cap_with_a_digest(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    let other = project(&store, "acme", "api").await;
    let ann = store.create_user("ann@example.com", "h", false, T0).await.unwrap();
    let bob = store.create_user("bob@example.com", "h", false, T0).await.unwrap();
    store.create_user("eve@example.com", "h", false, T0).await.unwrap();
    store.set_membership("acme", ann.id, Role::Member).await.unwrap();
    store.set_membership("acme", bob.id, Role::Admin).await.unwrap();
    store.set_alert_email_opt_out(bob.id, p, true).await.unwrap();
    assert_eq!(store.alert_email_recipients(p).await.unwrap(), vec!["ann@example.com".to_string()]);
    assert_eq!(store.alert_email_recipients(other).await.unwrap().len(), 2);
    assert_eq!(store.alert_email_opt_outs(bob.id).await.unwrap(), vec![p]);
    store.set_alert_email_opt_out(bob.id, p, false).await.unwrap();
    assert_eq!(store.alert_email_recipients(p).await.unwrap().len(), 2);

    // Two an hour: the third is over the cap and held for the digest.
    let hour = 3_600_000;
    assert!(store.reserve_alert_email("ann@example.com", T0, 2, hour).await.unwrap());
    assert!(store.reserve_alert_email("ann@example.com", T0 + 1, 2, hour).await.unwrap());
    assert!(!store.reserve_alert_email("ann@example.com", T0 + 2, 2, hour).await.unwrap());
    assert!(store.reserve_alert_email("bob@example.com", T0 + 2, 2, hour).await.unwrap());
    store
        .hold_alert_email("ann@example.com", T0 + 2, "New issue in acme/web: boom", "http://x/issues/1")
        .await
        .unwrap();
    store
        .hold_alert_email("ann@example.com", T0 + 3, "New issue in acme/web: bang", "http://x/issues/2")
        .await
        .unwrap();
    // Nothing is taken before the window ends; then each held alert once.
    assert!(store.take_alert_email_digests(T0 + hour - 1).await.unwrap().is_empty());
    let digest = store.take_alert_email_digests(T0 + hour).await.unwrap();
    assert_eq!(
        digest.iter().map(|h| h.summary.as_str()).collect::<Vec<_>>(),
        ["New issue in acme/web: boom", "New issue in acme/web: bang"]
    );
    assert!(store.take_alert_email_digests(T0 + hour).await.unwrap().is_empty());
    // A new window starts with the next e-mail.
    assert!(store.reserve_alert_email("ann@example.com", T0 + hour, 2, hour).await.unwrap());
}

async fn users_rules_count_distinct_users_within_the_window(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    store.create_alert_rule(p, &alert_rule(Trigger::Users { count: 2, window_ms: 60_000 }, 1), T0).await.unwrap();
    let by = |t: i64, user: &str| new_event(p, T0 + t, &body("pay", json!({"context": {"user": {"id": user}}})));
    // The same user twice is one user; events without a user count for none.
    store.store_events(&[by(0, "u1"), by(1, "u1"), new_event(p, T0 + 2, &body("pay", json!({})))]).await.unwrap();
    assert!(store.project_deliveries(p, 50).await.unwrap().is_empty());
    store.store_events(&[by(3, "u2")]).await.unwrap();
    store.store_events(&[by(4, "u3")]).await.unwrap();
    let deliveries = store.project_deliveries(p, 50).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].kind, "issue.users");
}

async fn email_alerts_are_one_delivery_per_recipient(store: Arc<dyn Store>) {
    let p = project(&store, "acme", "web").await;
    for (email, out) in [("ann@example.com", false), ("bob@example.com", false), ("eve@example.com", true)] {
        let user = store.create_user(email, "h", false, T0).await.unwrap();
        store.set_membership("acme", user.id, Role::Member).await.unwrap();
        store.set_alert_email_opt_out(user.id, p, out).await.unwrap();
    }
    let mut rule = alert_rule(Trigger::NewIssue, 1);
    rule.channels = vec![
        NewChannel { kind: ChannelKind::Email, target: "members".into(), secret: None },
        NewChannel { kind: ChannelKind::Email, target: "ops@example.com".into(), secret: None },
        NewChannel { kind: ChannelKind::Slack, target: "https://hooks.slack.com/x".into(), secret: None },
    ];
    store.create_alert_rule(p, &rule, T0).await.unwrap();
    store.store_events(&[new_event(p, T0, &body("pay", json!({})))]).await.unwrap();
    let mut recipients: Vec<Option<String>> =
        store.project_deliveries(p, 50).await.unwrap().into_iter().map(|d| d.recipient).collect();
    recipients.sort();
    let expected = [None, Some("ann@example.com"), Some("bob@example.com"), Some("ops@example.com")];
    assert_eq!(recipients, expected.map(|r| r.map(String::from)).to_vec());
    // Each is claimed with its one recipient.
    let due = store.claim_deliveries("n1", T0 + 1, 60_000, 10).await.unwrap();
    assert_eq!(due.iter().filter(|d| d.recipient.is_some()).count(), 3);
    assert!(due.iter().all(|d| d.recipient.is_some() == (d.channel.kind == ChannelKind::Email)));
}

async fn project_limits_are_read_with_the_project_and_changed_by_admins_only(store: Arc<dyn Store>) {
    let web = project(&store, "mine", "web").await;
    let api = project(&store, "mine", "api").await;
    let theirs = project(&store, "theirs", "web").await;
    let fresh = store.project_for(ADMIN, "mine", "web").await.unwrap().unwrap();
    assert_eq!(fresh.limits, ProjectLimits::default(), "a new project uses the defaults");

    let set = ProjectLimitsPatch {
        max_events: LimitChange::Set(1000),
        retention_days: LimitChange::Set(30),
        rate_limit: LimitChange::Set(RateLimit { count: 100, seconds: 60 }),
        spike_guard: Some(true),
    };
    let limits = store.set_project_limits(ADMIN, web, &set).await.unwrap().unwrap();
    let expected = ProjectLimits {
        max_events: Some(1000),
        retention_days: Some(30),
        rate_limit: Some(RateLimit { count: 100, seconds: 60 }),
        spike_guard: true,
    };
    assert_eq!(limits, expected);
    assert_eq!(store.project_for(ADMIN, "mine", "web").await.unwrap().unwrap().limits, expected);
    assert_eq!(store.projects_for(ADMIN).await.unwrap().iter().find(|p| p.id == web).unwrap().limits, expected);

    // Leaving a field keeps it; resetting one leaves the others alone.
    let reset_rate = ProjectLimitsPatch { rate_limit: LimitChange::Reset, ..Default::default() };
    let limits = store.set_project_limits(ADMIN, web, &reset_rate).await.unwrap().unwrap();
    assert_eq!(limits, ProjectLimits { rate_limit: None, ..expected });
    let reset_counts = ProjectLimitsPatch {
        max_events: LimitChange::Reset,
        retention_days: LimitChange::Reset,
        spike_guard: Some(false),
        ..Default::default()
    };
    let limits = store.set_project_limits(ADMIN, web, &reset_counts).await.unwrap().unwrap();
    assert_eq!(limits, ProjectLimits::default());
    let only_events = ProjectLimitsPatch { max_events: LimitChange::Set(5), ..Default::default() };
    store.set_project_limits(ADMIN, api, &only_events).await.unwrap().unwrap();

    let all = store.project_limits_all().await.unwrap();
    assert_eq!(
        all,
        vec![
            (web, ProjectLimits::default()),
            (api, ProjectLimits { max_events: Some(5), ..Default::default() }),
            (theirs, ProjectLimits::default()),
        ]
    );

    // Members may read but not change; strangers do not see the project.
    let ann = store.create_user("ann@example.com", "h", false, T0).await.unwrap();
    let bob = store.create_user("bob@example.com", "h", false, T0).await.unwrap();
    store.set_membership("mine", ann.id, Role::Admin).await.unwrap();
    store.set_membership("mine", bob.id, Role::Member).await.unwrap();
    let by_ann = store.set_project_limits(ann.viewer(), web, &only_events).await.unwrap().unwrap();
    assert_eq!(by_ann.max_events, Some(5));
    let err = store.set_project_limits(bob.viewer(), web, &reset_counts).await.unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err:?}");
    assert!(store.set_project_limits(ann.viewer(), theirs, &only_events).await.unwrap().is_none());
    assert!(store.set_project_limits(ADMIN, theirs + 1000, &only_events).await.unwrap().is_none());
    assert_eq!(store.project_for(bob.viewer(), "mine", "web").await.unwrap().unwrap().limits.max_events, Some(5));

    // Out-of-bounds values are refused by the store too, not only at the edges.
    let absurd = ProjectLimitsPatch { retention_days: LimitChange::Set(-1), ..Default::default() };
    assert!(store.set_project_limits(ADMIN, web, &absurd).await.is_err());
    assert_eq!(store.project_for(ADMIN, "mine", "web").await.unwrap().unwrap().limits.retention_days, None);
}

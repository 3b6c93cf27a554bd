//! The issue search in the store, backend by backend: which issues each
//! term keeps, and what counts, users and hourly figures mean when terms
//! filter events (`docs/search.md`). Same shape as `store_conformance.rs`.

use crate::support::*;
use booboo_core::search_query;
use booboo_server::store::{
    CountSource, Issue, IssueFilter, IssueSearch, IssueSort, IssueStatus, Page, SearchResults, Store, Viewer, TOTAL_CAP,
};
use serde_json::json;
use std::sync::Arc;

macro_rules! search_tests {
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

search_tests!(
    every_term_keeps_the_right_issues,
    event_terms_count_only_the_matching_events,
    status_assignment_paging_and_access,
    tag_terms_beside_other_terms_match_exactly,
    one_environment_counts_its_users_once_across_batches_and_merges,
    lists_read_in_index_order_page_like_one_sort,
    a_total_past_the_cap_says_more_than,
);

const HOUR: i64 = 3_600_000;
/// The "now" relative times are resolved against.
const NOW: i64 = T0 + 4 * HOUR;

/// Three issues: `pay` (three events in two environments, three releases'
/// worth of users and browsers), `ship` (one warning, no user) and `refund`
/// (one fatal with its own message, in staging).
async fn seed(store: &Arc<dyn Store>) -> i64 {
    let token = format!("{:032x}", rand_u128());
    let p = store.create_project("acme", "web", &token, T0).await.unwrap().0.id;
    let batch = vec![
        new_event(
            p,
            T0,
            &body("pay", json!({"context": {"user": {"id": "u1"}}, "tags": {"browser": "chrome"}, "release": "1.0"})),
        ),
        new_event(
            p,
            T0 + HOUR,
            &body(
                "pay",
                json!({"context": {"user": {"id": "u2"}}, "tags": {"browser": "firefox"}, "release": "1.1",
                       "environment": "staging"}),
            ),
        ),
        new_event(
            p,
            T0 + 2 * HOUR,
            &body(
                "pay",
                json!({"context": {"user": {"email": "b@x.io"}}, "tags": {"browser": "chrome"}, "release": "1.1"}),
            ),
        ),
        new_event(p, T0 + HOUR / 2, &body("ship", json!({"level": "warning"}))),
        new_event(
            p,
            T0 + 3 * HOUR,
            &body(
                "refund",
                json!({"message": "card declined timeout", "level": "fatal", "environment": "staging",
                       "release": "2.0", "context": {"user": {"id": "u1"}}}),
            ),
        ),
    ];
    store.store_events(&batch).await.unwrap();
    p
}

async fn search(store: &Arc<dyn Store>, viewer: Viewer, p: i64, text: &str, sort: IssueSort) -> SearchResults {
    let query = search_query::parse(text, NOW).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let search = IssueSearch { query, sort, any_status: false };
    store.search_issues(viewer, p, &search, Page { offset: 0, limit: 50 }, T0 / HOUR - 1).await.unwrap()
}

/// The matching issues' functions (from the culprit) with their counts and
/// users, in list order.
async fn found(store: &Arc<dyn Store>, p: i64, text: &str) -> Vec<(String, i64, i64)> {
    let results = search(store, ADMIN, p, text, IssueSort::Events).await;
    assert_eq!(results.total, results.hits.items.len() as i64, "{text:?}: total");
    results
        .hits
        .items
        .iter()
        .map(|h| (h.issue.culprit.split(' ').next().unwrap().to_string(), h.count, h.users))
        .collect()
}

fn names(rows: &[(String, i64, i64)]) -> Vec<&str> {
    let mut names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    names.sort();
    names
}

async fn every_term_keeps_the_right_issues(store: Arc<dyn Store>) {
    let p = seed(&store).await;
    let cases: &[(&str, &[&str])] = &[
        ("", &["pay", "refund", "ship"]),
        ("refund", &["refund"]),
        ("DECLIN", &["refund"]),
        ("views", &["pay", "refund", "ship"]),
        ("broke pay", &["pay"]),
        ("\"card declined\"", &["refund"]),
        ("nothinglikethis", &[]),
        ("level:warning", &["ship"]),
        ("level:>=error", &["pay", "refund"]),
        ("!level:error", &["refund", "ship"]),
        ("level:>fatal", &[]),
        ("timesSeen:>1", &["pay"]),
        ("!timesSeen:>1", &["refund", "ship"]),
        ("firstSeen:-3h", &["refund"]),
        ("age:+3h", &["pay", "ship"]),
        ("lastSeen:<-3h", &["ship"]),
        ("lastSeen:>=2026-01-01T02:00:00Z", &["pay", "refund"]),
        ("env:staging", &["pay", "refund"]),
        ("!environment:production", &["pay", "refund"]),
        ("environment:[production, staging]", &["pay", "refund", "ship"]),
        ("release:[1.1, 2.0]", &["pay", "refund"]),
        ("!release:1.0", &["pay", "refund"]),
        ("browser:chrome", &["pay"]),
        ("!browser:chrome", &["pay", "refund", "ship"]),
        ("runtime:python", &["refund", "ship"]),
        ("user.id:u1", &["pay", "refund"]),
        ("!user.id:u1", &["pay", "ship"]),
        ("user.email:b@x.io", &["pay"]),
        ("env:production release:1.1", &["pay"]),
        ("env:staging level:fatal declined", &["refund"]),
        ("env:production timesSeen:>=2", &["pay"]),
        // Values are bound, never read as SQL or as full-text syntax.
        ("env:\"x' OR '1'='1\"", &[]),
        ("browser:\"a\\\"b\" NEAR", &[]),
        ("OR AND NOT", &[]),
    ];
    for (text, expected) in cases {
        let rows = found(&store, p, text).await;
        assert_eq!(names(&rows), *expected, "{text:?}");
    }
}

/// A tag term with another event term is judged by the tag hashes the
/// filter index holds, or, for an event with too many tags to hash, by its
/// tags: both give exactly what the tags say.
async fn tag_terms_beside_other_terms_match_exactly(store: Arc<dyn Store>) {
    let p = seed(&store).await;
    let mut many: serde_json::Map<String, serde_json::Value> =
        (0..40).map(|i| (format!("k{i}"), json!(format!("v{i}")))).collect();
    many.insert("browser".into(), json!("chrome"));
    store.store_events(&[new_event(p, T0 + HOUR, &body("bulk", json!({ "tags": many })))]).await.unwrap();
    let cases: &[(&str, &[(&str, i64)])] = &[
        ("env:production browser:chrome", &[("pay", 2), ("bulk", 1)]),
        ("env:production browser:[firefox, chrome]", &[("pay", 2), ("bulk", 1)]),
        ("env:staging browser:[firefox, chrome]", &[("pay", 1)]),
        ("env:production !browser:chrome", &[("ship", 1)]),
        ("env:production k39:v39", &[("bulk", 1)]),
        ("env:production k39:v38", &[]),
        // A hash is of the key and the value together.
        ("env:production k38:v39", &[]),
        ("release:1.1 browser:chrome", &[("pay", 1)]),
        ("release:1.1 browser:Chrome", &[]),
    ];
    for (text, expected) in cases {
        let rows = found(&store, p, text).await;
        let rows: Vec<(&str, i64)> = rows.iter().map(|r| (r.0.as_str(), r.1)).collect();
        assert_eq!(rows, *expected, "{text:?}");
    }
}

async fn event_terms_count_only_the_matching_events(store: Arc<dyn Store>) {
    let p = seed(&store).await;
    let all = search(&store, ADMIN, p, "", IssueSort::Events).await;
    assert_eq!(all.counts, CountSource::AllEvents);
    assert_eq!(found(&store, p, "").await[0], ("pay".into(), 3, 3));

    // One environment: counts from the counters, users from stored events.
    let production = search(&store, ADMIN, p, "env:production", IssueSort::Events).await;
    assert_eq!(production.counts, CountSource::Counters);
    assert_eq!(found(&store, p, "env:production").await, vec![("pay".into(), 2, 2), ("ship".into(), 1, 0)]);
    let pay = production.hits.items[0].issue.id;
    let mut hours: Vec<(i64, i64)> =
        production.hourly.iter().filter(|h| h.issue_id == pay).map(|h| (h.hour - T0 / HOUR, h.count)).collect();
    hours.sort();
    assert_eq!(hours, vec![(0, 1), (2, 1)], "the chart counts production events only");
    // The lifetime figures stay on the issue.
    assert_eq!((production.hits.items[0].issue.count, production.hits.items[0].issue.users), (3, 3));

    let elsewhere = found(&store, p, "!env:production").await;
    // Equal counts list the newer issue first.
    assert_eq!(elsewhere, vec![("refund".into(), 1, 1), ("pay".into(), 1, 1)]);
    assert_eq!(found(&store, p, "!browser:chrome").await.iter().find(|r| r.0 == "pay").unwrap().1, 1);
    assert_eq!(found(&store, p, "release:[1.0, 1.1]").await[0], ("pay".into(), 3, 3));

    // Several terms: counts, users and chart from the stored events.
    let both = search(&store, ADMIN, p, "env:production release:1.1", IssueSort::Events).await;
    assert_eq!(both.counts, CountSource::StoredEvents);
    assert_eq!(found(&store, p, "env:production release:1.1").await, vec![("pay".into(), 1, 1)]);
    assert_eq!(both.hourly.iter().map(|h| (h.hour - T0 / HOUR, h.count)).collect::<Vec<_>>(), vec![(2, 1)]);
    assert_eq!(found(&store, p, "user.id:u1").await, vec![("refund".into(), 1, 1), ("pay".into(), 1, 1)]);

    // Sorting by users reads the counters for one wanted environment, the
    // stored events for several (a user may be in both).
    let by_users = search(&store, ADMIN, p, "env:staging", IssueSort::Users).await;
    assert_eq!(by_users.counts, CountSource::Counters);
    assert_eq!(by_users.hits.items.len(), 2);
    let by_users = search(&store, ADMIN, p, "env:[staging, production]", IssueSort::Users).await;
    assert_eq!(by_users.counts, CountSource::StoredEvents);
    assert_eq!(by_users.hits.items.iter().map(|h| h.users).collect::<Vec<_>>(), vec![3, 1, 0]);
    // Sorting by last seen follows the matching events when they are read.
    let latest = search(&store, ADMIN, p, "env:production user.id:u1", IssueSort::LastSeen).await;
    assert_eq!(latest.hits.items.len(), 1);
}

/// The users of one environment, sorted by or not: a user is one user per
/// issue and environment however many batches bring them, a user of two
/// environments counts in each, and a merge adds the merged issue's users
/// without counting a shared one twice.
async fn one_environment_counts_its_users_once_across_batches_and_merges(store: Arc<dyn Store>) {
    let p = seed(&store).await;
    let users_of = |rows: Vec<(String, i64, i64)>| rows.into_iter().map(|r| (r.0, r.2)).collect::<Vec<_>>();
    assert_eq!(users_of(found(&store, p, "env:staging").await), vec![("refund".into(), 1), ("pay".into(), 1)]);
    let user = |id: &str| json!({"context": {"user": {"id": id}}, "environment": "staging"});
    // u2 again (one batch and then another), u3 new, and u1 (seen by `pay`
    // in production only) now in staging too.
    store.store_events(&[new_event(p, T0 + 5 * HOUR, &body("pay", user("u2")))]).await.unwrap();
    let batch: Vec<_> = ["u2", "u3", "u3", "u1"]
        .iter()
        .enumerate()
        .map(|(n, id)| new_event(p, T0 + (6 + n as i64) * HOUR, &body("pay", user(id))))
        .collect();
    store.store_events(&batch).await.unwrap();
    let by_users = search(&store, ADMIN, p, "env:staging", IssueSort::Users).await;
    assert_eq!(by_users.counts, CountSource::Counters);
    let rows: Vec<(String, i64, i64)> = by_users
        .hits
        .items
        .iter()
        .map(|h| (h.issue.culprit.split(' ').next().unwrap().to_string(), h.count, h.users))
        .collect();
    assert_eq!(rows, vec![("pay".into(), 6, 3), ("refund".into(), 1, 1)]);
    assert_eq!(users_of(found(&store, p, "env:production").await)[0], ("pay".into(), 2));

    // `refund`'s staging user u1 is already one of `pay`'s there.
    let [pay, refund] = ["pay", "refund"]
        .map(|name| by_users.hits.items.iter().find(|h| h.issue.culprit.starts_with(name)).unwrap().issue.id);
    let merge = booboo_server::store::IssueMerge::new(pay, &[refund]).unwrap();
    assert!(store.merge_issues(ADMIN, &merge, NOW).await.unwrap());
    assert_eq!(users_of(found(&store, p, "env:staging").await), vec![("pay".into(), 3)]);
    // The merged fingerprint's next event lands on `pay` (and names it).
    store.store_events(&[new_event(p, NOW, &body("refund", user("u4")))]).await.unwrap();
    let merged = search(&store, ADMIN, p, "env:staging", IssueSort::Users).await;
    let rows: Vec<(i64, i64)> = merged.hits.items.iter().map(|h| (h.issue.id, h.users)).collect();
    assert_eq!(rows, vec![(pay, 4)]);
}

async fn status_assignment_paging_and_access(store: Arc<dyn Store>) {
    let p = seed(&store).await;
    let ship = search(&store, ADMIN, p, "level:warning", IssueSort::LastSeen).await.hits.items[0].issue.id;
    store.set_issue_status(ADMIN, ship, IssueStatus::Resolved).await.unwrap().unwrap();
    assert_eq!(names(&found(&store, p, "").await), ["pay", "refund"], "unresolved by default");
    assert_eq!(names(&found(&store, p, "is:resolved").await), ["ship"]);
    assert_eq!(names(&found(&store, p, "!is:resolved").await), ["pay", "refund"]);
    assert_eq!(names(&found(&store, p, "is:resolved is:unresolved").await), ["pay", "refund", "ship"]);
    let any = IssueSearch { any_status: true, ..IssueSearch::default() };
    let every = store.search_issues(ADMIN, p, &any, Page { offset: 0, limit: 50 }, 0).await.unwrap();
    assert_eq!(every.total, 3);

    assert_eq!(found(&store, p, "is:unassigned").await.len(), 2);
    assert!(found(&store, p, "is:assigned").await.is_empty());
    assert!(found(&store, p, "assigned:me").await.is_empty());
    assert!(found(&store, p, "assigned:nobody@example.com").await.is_empty());
    assert_eq!(found(&store, p, "!assigned:me").await.len(), 2);

    // A page of one still says how many match in all.
    let first = IssueSearch::default();
    let page = store.search_issues(ADMIN, p, &first, Page { offset: 0, limit: 1 }, 0).await.unwrap();
    assert_eq!((page.hits.items.len(), page.total, page.hits.next_offset), (1, 2, Some(1)));
    let second = store.search_issues(ADMIN, p, &first, Page { offset: 1, limit: 1 }, 0).await.unwrap();
    assert_eq!((second.hits.items.len(), second.total, second.hits.next_offset), (1, 2, None));
    let filtered = IssueSearch { query: search_query::parse("env:staging", NOW).unwrap(), ..IssueSearch::default() };
    let page = store.search_issues(ADMIN, p, &filtered, Page { offset: 0, limit: 1 }, 0).await.unwrap();
    assert_eq!((page.hits.items.len(), page.total), (1, 2));

    // Someone outside the organisation finds nothing.
    let stranger = store.create_user("stranger@example.com", "x", false, T0).await.unwrap().viewer();
    assert_eq!(search(&store, stranger, p, "", IssueSort::LastSeen).await.total, 0);
    assert_eq!(search(&store, stranger, p, "env:staging", IssueSort::LastSeen).await.total, 0);
}

/// Thirteen issues whose counts, users and times do not follow their ids,
/// a third resolved or ignored: every sort under every set of statuses,
/// with and without a filter, paged three at a time, lists the issues in
/// the order one sort of all of them gives (`search_sql.rs` reads most of
/// these lists in index order, one walk per status).
async fn lists_read_in_index_order_page_like_one_sort(store: Arc<dyn Store>) {
    let token = format!("{:032x}", rand_u128());
    let p = store.create_project("acme", "web", &token, T0).await.unwrap().0.id;
    let mut batch = Vec::new();
    for k in 0..13_i64 {
        let (first, events) = ((k * 7) % 13, k % 4 + 1);
        for e in 0..events {
            let environment = if k % 2 == 0 && e == 0 { "staging" } else { "production" };
            let level = if k % 3 == 0 { "warning" } else { "error" };
            let fields = json!({"environment": environment, "level": level,
                                "context": {"user": {"id": format!("u{}", (k + e) % (k % 3 + 1))}}});
            batch.push(new_event(p, T0 + first * HOUR + e * (k % 5) * HOUR / 3, &body(&format!("f{k}"), fields)));
        }
    }
    store.store_events(&batch).await.unwrap();
    let every = IssueFilter { status: None, ..IssueFilter::default() };
    let issues = store.list_issues(ADMIN, p, &every, Page { offset: 0, limit: 100 }).await.unwrap().items;
    assert_eq!(issues.len(), 13);
    for issue in &issues {
        let k: i64 = issue.culprit.trim_start_matches('f').split(' ').next().unwrap().parse().unwrap();
        let status = match k % 5 {
            1 => IssueStatus::Resolved,
            3 => IssueStatus::Ignored,
            _ => continue,
        };
        store.set_issue_status(ADMIN, issue.id, status).await.unwrap().unwrap();
    }
    let issues = store.list_issues(ADMIN, p, &every, Page { offset: 0, limit: 100 }).await.unwrap().items;
    type Keep = fn(&Issue) -> bool;
    let searches: [(&str, bool, Keep); 9] = [
        ("", false, |i| i.status == IssueStatus::Unresolved),
        ("is:resolved", false, |i| i.status == IssueStatus::Resolved),
        ("", true, |_| true),
        ("!is:resolved", false, |i| i.status != IssueStatus::Resolved),
        ("is:resolved is:ignored", false, |i| i.status != IssueStatus::Unresolved),
        ("level:error", true, |i| i.level == "error"),
        ("timesSeen:>2", true, |i| i.count > 2),
        ("env:staging", false, |i| i.status == IssueStatus::Unresolved && i.environments.contains(&"staging".into())),
        ("env:staging", true, |i| i.environments.contains(&"staging".into())),
    ];
    for (text, any_status, keep) in searches {
        for sort in [IssueSort::LastSeen, IssueSort::FirstSeen, IssueSort::Events, IssueSort::Users] {
            if text.starts_with("env:") && matches!(sort, IssueSort::Events | IssueSort::Users) {
                continue; // counted in the environment, not the issue's own counts
            }
            let key = |i: &Issue| match sort {
                IssueSort::LastSeen => i.last_seen,
                IssueSort::FirstSeen => i.first_seen,
                IssueSort::Events => i.count,
                IssueSort::Users => i.users,
            };
            let mut wanted: Vec<&Issue> = issues.iter().filter(|i| keep(i)).collect();
            wanted.sort_by_key(|i| std::cmp::Reverse((key(i), i.id)));
            let wanted: Vec<i64> = wanted.iter().map(|i| i.id).collect();
            let search = IssueSearch { query: search_query::parse(text, NOW).unwrap(), sort, any_status };
            let mut listed = Vec::new();
            let mut offset = 0;
            loop {
                let page = store.search_issues(ADMIN, p, &search, Page { offset, limit: 3 }, 0).await.unwrap();
                let case = format!("{text:?} any_status={any_status} {sort:?} offset {offset}");
                assert_eq!((page.total, page.total_exact), (wanted.len() as i64, true), "{case}");
                listed.extend(page.hits.items.iter().map(|h| h.issue.id));
                match page.hits.next_offset {
                    Some(next) => offset = next,
                    None => break,
                }
            }
            assert_eq!(listed, wanted, "{text:?} any_status={any_status} {sort:?}");
        }
    }
}

/// Past `TOTAL_CAP` matching issues, a list read in index order says "more
/// than" the cap; a list that finds every match anyway (sorted by counts in
/// an environment) and the last page still say exactly how many.
async fn a_total_past_the_cap_says_more_than(store: Arc<dyn Store>) {
    let token = format!("{:032x}", rand_u128());
    let p = store.create_project("acme", "web", &token, T0).await.unwrap().0.id;
    let issues = TOTAL_CAP + 2;
    let events: Vec<_> = (0..issues).map(|k| new_event(p, T0 + k, &body(&format!("f{k}"), json!({})))).collect();
    for chunk in events.chunks(1_000) {
        store.store_events(chunk).await.unwrap();
    }
    let first = search(&store, ADMIN, p, "", IssueSort::LastSeen).await;
    assert_eq!((first.total, first.total_exact, first.hits.items.len()), (TOTAL_CAP, false, 50));
    let last = IssueSearch::default();
    let page = store.search_issues(ADMIN, p, &last, Page { offset: issues - 2, limit: 50 }, 0).await.unwrap();
    assert_eq!((page.total, page.total_exact, page.hits.items.len()), (issues, true, 2));
    let past = store.search_issues(ADMIN, p, &last, Page { offset: issues + 10, limit: 50 }, 0).await.unwrap();
    assert_eq!((past.total, past.total_exact, past.hits.items.len()), (TOTAL_CAP, false, 0));
    let sorted_by_counts = search(&store, ADMIN, p, "env:production", IssueSort::Events).await;
    assert_eq!((sorted_by_counts.total, sorted_by_counts.total_exact), (issues, true));
}

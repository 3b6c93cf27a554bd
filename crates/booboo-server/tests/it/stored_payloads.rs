//! Payloads are stored compressed, and rows stored before compression
//! (JSON in `payload`, no `body`, `tags`, `user_email` or `tag_hashes`) keep reading and
//! searching as they did: an upgraded installation mixes both.

use crate::support::*;
use booboo_core::search_query;
use booboo_server::store::{IssueSearch, IssueSort, Page};
use serde_json::json;
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_uncompressed_rows_read_and_search_beside_compressed_ones() {
    let (store, dir) = sqlite_store().await;
    let token = format!("{:032x}", rand_u128());
    let p = store.create_project("acme", "web", &token, T0).await.unwrap().0.id;
    let event = |function: &str, email: &str, region: &str| {
        body(function, json!({"tags": {"region": region}, "context": {"user": {"id": email, "email": email}}}))
    };
    let new = new_event(p, T0, &event("pay", "new@example.com", "eu"));
    let old = new_event(p, T0 + 1, &event("ship", "old@example.com", "eu"));
    let (new_id, old_id) = (new.processed.event.event_id.clone(), old.processed.event.event_id.clone());
    let old_json = old.payload.clone();
    store.store_events(&[new, old]).await.unwrap();

    let url = format!("sqlite:{}", dir.path().join("booboo.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (payload, body_len): (String, i64) =
        sqlx::query_as("SELECT payload, LENGTH(body) FROM events WHERE event_id = ?")
            .bind(&new_id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(payload, "", "a new row keeps its JSON compressed only");
    assert!(body_len > 0);
    // Turn one row back into what an older booboo stored.
    sqlx::query("UPDATE events SET payload = ?, body = NULL, tags = NULL, user_email = NULL, tag_hashes = NULL WHERE event_id = ?")
        .bind(&old_json)
        .bind(&old_id)
        .execute(&mut db)
        .await
        .unwrap();

    for (id, email) in [(&new_id, "new@example.com"), (&old_id, "old@example.com")] {
        let stored = store.event(ADMIN, id).await.unwrap().unwrap();
        let payload: serde_json::Value = serde_json::from_str(&stored.payload).unwrap();
        assert_eq!(payload["user"]["email"], email, "{id}");
        assert_eq!(payload["tags"]["region"], "eu");
    }
    let found = |text: &'static str| {
        let store = store.clone();
        async move {
            let query = search_query::parse(text, T0 + 3_600_000).unwrap();
            // Two event terms, so the stored events answer (not the counters).
            let search = IssueSearch { query, sort: IssueSort::LastSeen, any_status: false };
            let hits = store.search_issues(ADMIN, p, &search, Page { offset: 0, limit: 10 }, 0).await.unwrap();
            let mut culprits: Vec<String> = hits.hits.items.iter().map(|h| h.issue.culprit.clone()).collect();
            culprits.sort();
            culprits
        }
    };
    let functions =
        |culprits: Vec<String>| culprits.iter().map(|c| c.split(' ').next().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(functions(found("region:eu env:production").await), ["pay", "ship"]);
    assert_eq!(functions(found("user.email:old@example.com region:eu").await), ["ship"]);
    assert_eq!(functions(found("user.email:new@example.com region:eu").await), ["pay"]);
    assert!(found("region:us env:production").await.is_empty());
    // A release without an environment term reads through the project's
    // environments: every event still counts.
    assert_eq!(functions(found("release:1.0 region:eu").await), ["pay", "ship"]);
    assert!(found("release:9.9 region:eu").await.is_empty());
}

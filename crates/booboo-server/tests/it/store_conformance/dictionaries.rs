//! Payload dictionaries, backend by backend: trained once the installation
//! has enough events, used only once settled, and every body reads back,
//! with or without one.

use crate::support::*;
use booboo_server::payload_dictionaries::refresh_once;
use booboo_server::store::stored_payload::SETTLE_MS;
use booboo_server::store::{NewEvent, Store, StoreOutcome};
use serde_json::json;
use std::sync::Arc;

store_tests!(a_trained_dictionary_compresses_new_events_and_every_event_reads_back);

fn event_body(i: i64) -> serde_json::Value {
    let region = ["eu", "us"][(i % 2) as usize];
    body(
        &format!("handler_{}", i % 5),
        json!({"message": format!("order {i} failed"), "tags": {"region": region, "build": "2026.12.3"},
               "context": {"user": {"id": format!("u{}", i % 9), "email": format!("u{}@example.com", i % 9)}}}),
    )
}

async fn a_trained_dictionary_compresses_new_events_and_every_event_reads_back(store: Arc<dyn Store>) {
    let token = format!("{:032x}", rand_u128());
    let p = store.create_project("acme", "web", &token, T0).await.unwrap().0.id;
    let before: Vec<NewEvent> = (0..60).map(|i| new_event(p, T0 + i, &event_body(i))).collect();
    let plain_size = before[0].body.as_ref().unwrap().len();
    store.store_events(&before).await.unwrap();

    assert_eq!(refresh_once(&store, T0 + 1_000, 100).await.unwrap(), None, "too few events to train on");
    assert!(store.payload_dictionaries().await.unwrap().is_empty());
    assert_eq!(refresh_once(&store, T0 + 1_000, 50).await.unwrap(), None, "trained, not settled yet");
    let trained = store.payload_dictionaries().await.unwrap();
    assert_eq!(trained.len(), 1);
    let id = refresh_once(&store, T0 + 1_000 + SETTLE_MS, 50).await.unwrap();
    assert_eq!(id, Some(trained[0].id), "settled: new bodies use it");
    assert_eq!(store.payload_dictionaries().await.unwrap().len(), 1, "trained once");

    let after = new_event_with(&*store, p, T0 + 2_000, &event_body(1_000));
    let small = after.body.as_ref().unwrap().len();
    assert!(small * 2 < plain_size, "{small} B with the dictionary, {plain_size} B without");
    let after_id = after.processed.event.event_id.clone();
    assert!(matches!(store.store_events(&[after]).await.unwrap()[0], StoreOutcome::Stored { .. }));

    for (id, message) in [(&before[7].processed.event.event_id, "order 7 failed"), (&after_id, "order 1000 failed")] {
        let stored = store.event(ADMIN, id).await.unwrap().unwrap();
        let payload: serde_json::Value = serde_json::from_str(&stored.payload).unwrap();
        assert_eq!(payload["message"], message);
    }
}

fn new_event_with(store: &dyn Store, project_id: i64, at: i64, body: &serde_json::Value) -> NewEvent {
    let plain = new_event(project_id, at, body);
    NewEvent::new(store.payload_codec(), project_id, at, at, plain.processed)
}

//! Reading pages through the router: the project settings page (what it
//! shows, what it saves and what it refuses), and how an event reads —
//! nested data as a tree, handled or not, breadcrumb times, tag breakdown.

use crate::support::{body, new_event, rand_u128};
use crate::web_pages::site;
use axum::http::StatusCode;
use booboo_server::store::Store;
use serde_json::json;

#[tokio::test]
async fn the_settings_page_shows_saves_and_refuses_with_the_message_by_the_field() {
    let site = site().await;
    let page = "/projects/acme/web/settings";
    let (mut ann, csrf) = site.sign_in("ann@example.com").await;
    let shown = site.get(&mut ann, page).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let defaults = installation_defaults();
    assert!(shown.text().contains(&format!("at most <strong>{}</strong> stored events", defaults.0)), "{}", shown.body);
    assert!(shown.text().contains(&format!("<strong>{}</strong> days", defaults.1)));
    assert!(shown.body.contains("name=\"max_events\""), "an admin gets the form");

    let saved = site
        .post(
            &mut ann,
            page,
            &[("csrf", &csrf), ("max_events", "500"), ("retention_days", "7"), ("rate_limit", "100/min")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(saved.location(), "/projects/acme/web/settings?saved=1");
    let after = site.get(&mut ann, saved.location()).await.text();
    assert!(
        after.contains("Settings saved") && after.contains("at most <strong>500</strong> stored events"),
        "{after}"
    );
    assert!(after.contains("<strong>7</strong> days") && after.contains("<strong>100/min</strong>"), "{after}");

    for (field, value, message) in [
        ("max_events", "-5", "-5 is not a number of stored events"),
        ("rate_limit", "100/fortnight", "\"fortnight\" is not a period"),
    ] {
        let mut fields =
            vec![("csrf", csrf.as_str()), ("max_events", "9"), ("retention_days", "3"), ("rate_limit", "")];
        fields.retain(|(name, _)| *name != field);
        fields.push((field, value));
        let refused = site.post(&mut ann, page, &fields).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}={value}");
        let text = refused.text();
        let error_at = text.find(&format!("id=\"{field}-error\"")).expect("the message is by its field");
        let shown = &text[error_at..text[error_at..].find("</span>").unwrap() + error_at];
        assert!(shown.contains(message), "{shown}");
        assert!(text.contains(&format!("value=\"{value}\"")), "what was typed stays in the field");
        assert!(text.contains("Nothing was saved"));
        let limits = limits_of(&site.store).await;
        assert_eq!((limits.max_events, limits.retention_days), (Some(500), Some(7)), "nothing was saved");
    }

    let refused = site.post(&mut ann, page, &[("max_events", "1")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "without the CSRF token");

    let (mut bob, bob_csrf) = site.sign_in("bob@example.com").await;
    let read_only = site.get(&mut bob, page).await;
    assert_eq!(read_only.status, StatusCode::OK);
    assert!(!read_only.body.contains("name=\"max_events\"") && read_only.text().contains("Only an admin"));
    assert!(read_only.text().contains("at most <strong>500</strong> stored events"));
    let refused = site.post(&mut bob, page, &[("csrf", &bob_csrf), ("max_events", "1")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(limits_of(&site.store).await.max_events, Some(500));
}

async fn limits_of(store: &std::sync::Arc<dyn Store>) -> booboo_server::store::ProjectLimits {
    let ann = store.user_by_email("ann@example.com").await.unwrap().unwrap().viewer();
    store.project_for(ann, "acme", "web").await.unwrap().unwrap().limits
}

/// The installation's defaults, as the site's configuration loads them.
fn installation_defaults() -> (i64, i64) {
    let config = booboo_server::config::Config::load(booboo_server::config::Overrides {
        data_dir: Some(std::env::temp_dir()),
        ..Default::default()
    })
    .unwrap();
    (config.default_max_events, config.default_retention_days)
}

/// A Sentry SDK's event as the store endpoint would keep it.
fn sentry_new_event(project_id: i64, at: i64, body: &serde_json::Value) -> booboo_server::store::NewEvent {
    let id = format!("{:032x}", rand_u128());
    let arrival = booboo_core::sentry_event::Arrival {
        received_at: booboo_core::timestamp::from_unix_millis(at),
        envelope_event_id: None,
        fallback_event_id: &id,
    };
    let event = booboo_core::sentry_event::parse(&serde_json::to_vec(body).unwrap(), arrival).unwrap();
    booboo_server::store::NewEvent::new(&Default::default(), project_id, at, at, booboo_core::process(event))
}

fn stored_issue(outcome: &booboo_server::store::StoreOutcome) -> i64 {
    match outcome {
        booboo_server::store::StoreOutcome::Stored { issue_id } => *issue_id,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_event_reads_as_a_tree_marked_handled_or_not_with_breadcrumb_times_and_tag_shares() {
    let site = site().await;
    let (mut ann, _) = site.sign_in("ann@example.com").await;
    let project = limits_project_id(&site.store).await;
    let now = booboo_server::clock::now_millis();
    let long = "w".repeat(250);
    let sentry = json!({
        "platform": "python", "level": "error", "timestamp": now as f64 / 1000.0,
        "exception": {"values": [{"type": "LookupError", "value": "no such cart",
            "mechanism": {"type": "excepthook", "handled": false},
            "stacktrace": {"frames": [{"filename": "/srv/app/cart.py", "function": "load", "lineno": 4, "in_app": true,
                "vars": {"cart": {"items": [{"sku": "APPLE", "qty": 3}]}, "note": long}}]}}]},
        "breadcrumbs": {"values": [{"timestamp": (now - 2_100) as f64 / 1000.0, "category": "http", "message": "GET /cart"}]},
        "extra": {"request_body": {"user": {"id": 7}}},
    });
    let caught = body("pay", json!({"handled": true, "tags": {"region": "eu"}}));
    let batch = vec![
        sentry_new_event(project, now, &sentry),
        new_event(project, now - 3_000, &caught),
        new_event(project, now - 2_000, &caught),
        new_event(project, now - 1_000, &caught),
        new_event(project, now, &body("pay", json!({"handled": true, "tags": {"region": "us"}}))),
    ];
    let outcomes = site.store.store_events(&batch).await.unwrap();
    let (unhandled, handled) = (stored_issue(&outcomes[0]), stored_issue(&outcomes[1]));
    assert_eq!(stored_issue(&outcomes[4]), handled);

    let page = site.get(&mut ann, &format!("/issues/{unhandled}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = &page.body;
    assert!(html.contains("class=\"badge regression handled-mark\""), "the head says unhandled");
    assert!(html.contains("<details class=\"tree\" open><summary class=\"muted\">{…} 1 key</summary>"), "{html}");
    let sku = html.find("<dt><code>sku</code>").expect("a key deep in the locals tree");
    assert!(
        html[sku..].starts_with("<dt><code>sku</code></dt><dd><code class=\"wrap\">APPLE</code></dd>"),
        "{}",
        &html[sku..sku + 200]
    );
    assert!(html.contains("<details class=\"long-value\">") && html.contains("(250 characters)"), "long strings fold");
    assert!(html.contains("<dt><code>user</code></dt>"), "extra data is a tree too");
    assert!(page.text().contains("−2.1 s before the error"), "breadcrumb distance");
    let clock = booboo_core::timestamp::from_unix_millis(now - 2_100);
    let clock = format!("{:02}:{:02}:{:02}.{:03}", clock.hour(), clock.minute(), clock.second(), clock.millisecond());
    assert!(html.contains(&format!("<code>{clock}</code>")), "breadcrumb time of day");

    let page = site.get(&mut ann, &format!("/issues/{handled}")).await;
    assert!(page.body.contains("<span class=\"badge handled-mark\""), "the head says handled");
    assert!(!page.body.contains("unhandled"));
    let text = page.text();
    let region = text.find("<p class=\"tag-key\">region</p>").expect("a block for the region tag");
    let block = &text[region..];
    let (eu, us) = (block.find(">eu</span>").unwrap(), block.find(">us</span>").unwrap());
    assert!(eu < us, "the most common value first");
    assert!(block[eu..].starts_with(">eu</span><span class=\"muted\">75.0%</span>"), "{}", &block[eu..eu + 80]);
    assert!(block[us..].starts_with(">us</span><span class=\"muted\">25.0%</span>"));
    assert!(block.contains("<rect width=\"75.0\" height=\"4\">"), "a bar as wide as the share");
}

async fn limits_project_id(store: &std::sync::Arc<dyn Store>) -> i64 {
    let ann = store.user_by_email("ann@example.com").await.unwrap().unwrap().viewer();
    store.project_for(ann, "acme", "web").await.unwrap().unwrap().id
}

//! Reading pages through the router: the project settings page (what it
//! shows, what it saves and what it refuses), and how an event reads —
//! nested data as a tree, handled or not, breadcrumb times, tag breakdown.

use crate::web_pages::site;
use axum::http::StatusCode;
use booboo_server::store::Store;

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
    let after = site.get(&mut ann, &saved.location().to_string()).await.text();
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

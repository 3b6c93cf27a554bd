//! The one admin check (`access::require_admin`) answers each edge in the
//! words it always had: a member is told who can make the change, an
//! outsider is told that what they asked for does not exist.

use crate::ownership_http::site;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn keys_are_changed_by_admins_only_through_the_api_and_the_dashboard() {
    let (site, ann, bob, eve) = site().await;
    let keys = "/projects/acme/web/keys";

    let member = site.api(&bob, "POST", keys, Some(json!({"label": "worker"}))).await;
    assert_eq!(member.status, StatusCode::FORBIDDEN, "{}", member.body);
    assert_eq!(member.json(), json!({"detail": "only admins of acme can change its keys; ask one of them"}));
    let outsider = site.api(&eve, "POST", keys, Some(json!({"label": "worker"}))).await;
    assert_eq!(outsider.status, StatusCode::NOT_FOUND, "{}", outsider.body);
    assert_eq!(outsider.json(), json!({"detail": "project not found"}));
    assert_eq!(site.api(&ann, "POST", keys, Some(json!({"label": "worker"}))).await.status, StatusCode::CREATED);

    let member = site.form(&bob, keys, &[("label", "worker")]).await;
    assert_eq!(member.status, StatusCode::FORBIDDEN, "{}", member.body);
    assert!(
        member.body.contains("only admins of acme can change its keys; ask one of them (Settings → acme lists them)"),
        "{}",
        member.body
    );
    let outsider = site.form(&eve, keys, &[("label", "worker")]).await;
    assert_eq!(outsider.status, StatusCode::NOT_FOUND, "{}", outsider.body);
    assert!(outsider.body.contains("No such project"), "{}", outsider.body);
    assert_eq!(site.form(&ann, keys, &[("label", "worker")]).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn members_are_changed_by_admins_only_on_the_dashboard() {
    let (site, ann, bob, eve) = site().await;
    let revoke = "/settings/orgs/acme/invitations/revoke";
    let fields = [("email", "nobody@example.com")];

    let member = site.form(&bob, revoke, &fields).await;
    assert_eq!(member.status, StatusCode::FORBIDDEN, "{}", member.body);
    assert!(member.body.contains("only admins of acme can change its members; ask one of them<"), "{}", member.body);
    let outsider = site.form(&eve, revoke, &fields).await;
    assert_eq!(outsider.status, StatusCode::NOT_FOUND, "{}", outsider.body);
    assert!(outsider.body.contains("No such organisation"), "{}", outsider.body);
    // An admin gets as far as finding no such invitation.
    assert_eq!(site.form(&ann, revoke, &fields).await.status, StatusCode::NOT_FOUND);
}

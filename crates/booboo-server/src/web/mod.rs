//! The dashboard: server-rendered HTML for people. It reads and changes data
//! through the store only, like the JSON API; it never calls ingestion.
//!
//! One module per family of pages; `templates.rs` renders, `session.rs` says
//! who is signed in and checks every form's CSRF token, `page_error.rs` turns
//! failures into pages a person can act on.

mod account_mail;
mod alerts;
mod auth;
mod chart;
mod deletion;
mod event_view;
mod form;
mod issues;
mod local_path;
mod merge;
mod ownership;
mod page_error;
mod project_settings;
mod projects;
mod sdk_download;
mod session;
mod settings;
mod static_files;
mod templates;
mod time_text;
mod value_tree;

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use page_error::PageError;
use session::SignedIn;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/setup/{token}", get(auth::setup_form).post(auth::setup))
        .route("/signin", get(auth::sign_in_form).post(auth::sign_in))
        .route("/signout", post(auth::sign_out))
        .route("/invitations/{token}", get(auth::invitation_form).post(auth::accept_invitation))
        .route("/forgot-password", get(auth::forgot_password_form).post(auth::forgot_password))
        .route("/password/{token}", get(auth::password_form).post(auth::use_password_link))
        .route("/projects", get(projects::list).post(projects::create))
        .route("/projects/{org}/{project}", get(issues::list))
        .route("/projects/{org}/{project}/issues/bulk", post(issues::bulk))
        .route("/projects/{org}/{project}/setup", get(projects::setup))
        .route("/projects/{org}/{project}/delete", get(deletion::confirm_project).post(deletion::delete_project))
        .route("/projects/{org}/{project}/settings", get(project_settings::show).post(project_settings::save))
        .route("/projects/{org}/{project}/status", get(projects::status))
        .route("/projects/{org}/{project}/keys", post(projects::add_key))
        .route("/projects/{org}/{project}/alerts", get(alerts::show).post(alerts::create))
        .route("/projects/{org}/{project}/alerts/{id}/edit", post(alerts::edit))
        .route("/projects/{org}/{project}/alerts/{id}/test", post(alerts::test))
        .route("/projects/{org}/{project}/alerts/{id}/delete", post(alerts::delete))
        .route("/projects/{org}/{project}/keys/{key}/revoke", post(projects::revoke_key))
        .route("/projects/{org}/{project}/keys/{key}/delete", post(projects::delete_key))
        .route("/projects/{org}/{project}/merge", get(merge::confirm).post(merge::merge))
        .route("/issues/{id}", get(issues::show))
        .route("/issues/{id}/status", post(issues::set_status))
        .route("/issues/{id}/assign", post(ownership::assign))
        .route("/issues/{id}/comments", post(ownership::comment))
        .route("/issues/{id}/delete", get(deletion::confirm_issue).post(deletion::delete_issue))
        .route("/issues/{id}/events/{event}", get(issues::show_event))
        .route("/issues/{id}/events/{event}/json", get(issues::event_json))
        .route("/settings", get(settings::show))
        .route("/settings/password", post(settings::change_password))
        .route("/settings/alert-emails/{project}", post(settings::alert_emails))
        .route("/settings/tokens", post(settings::create_token))
        .route("/settings/tokens/{id}/revoke", post(settings::revoke_token))
        .route("/settings/orgs/{org}", get(settings::members))
        .route("/settings/orgs/{org}/members", post(settings::add_member))
        .route("/settings/orgs/{org}/members/{user}/role", post(settings::change_role))
        .route("/settings/orgs/{org}/members/{user}/remove", post(settings::remove_member))
        .route("/settings/orgs/{org}/invitations/revoke", post(settings::revoke_invitation))
        .route("/static/{*file}", get(static_files::serve))
        .route("/sdk/python/{file}", get(sdk_download::serve))
        .fallback(|| async { PageError::NotFound("page") })
        .layer(axum::middleware::from_fn(security_headers))
}

/// `GET /`: the projects of a signed-in user; otherwise sign-in, or on a
/// fresh installation a word on where the setup link is.
async fn home(State(state): State<AppState>, signed_in: Option<SignedIn>) -> Result<Response, PageError> {
    if signed_in.is_some() {
        return Ok(Redirect::to("/projects").into_response());
    }
    if state.store.user_count().await? == 0 {
        return Ok(templates::page("welcome.html", minijinja::context! {})?.into_response());
    }
    Ok(Redirect::to("/signin").into_response())
}

/// No inline scripts or styles, no framing, no content sniffing: whatever
/// an event smuggles into a page cannot run there.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

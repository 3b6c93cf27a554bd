//! Failures of a dashboard request, each turned into a page that says what
//! happened and what to do — or, for a missing session, into a redirect to
//! sign-in that comes back afterwards.

use super::templates;
use crate::access::{AdminOnly, Refusal};
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

#[derive(Debug)]
pub enum PageError {
    /// Not there, or not for this viewer: both answer the same.
    NotFound(&'static str),
    Forbidden(String),
    BadRequest(String),
    /// No valid session: sign in, then come back to `next`.
    SignIn {
        next: String,
    },
    Unavailable,
    /// The database could not write for want of disk space.
    DiskFull,
    Internal(String),
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> PageError {
        match e {
            StoreError::NotFound(_) => PageError::NotFound("page"),
            StoreError::Conflict(m) => PageError::BadRequest(m),
            StoreError::Forbidden(m) => PageError::Forbidden(m),
            e @ StoreError::DiskFull(_) => {
                tracing::error!("{e}");
                PageError::DiskFull
            }
            other => {
                tracing::error!("{other}");
                PageError::Unavailable
            }
        }
    }
}

impl From<Refusal> for PageError {
    fn from(refusal: Refusal) -> PageError {
        match refusal {
            Refusal::NotFound(what) => PageError::NotFound(what),
            // Keys are changed on a project's page: say where the admins
            // are listed. Members are changed on that list itself.
            Refusal::NotAdmin { org, change: change @ AdminOnly::Keys } => {
                PageError::Forbidden(format!("{} (Settings → {org} lists them)", change.refusal(&org)))
            }
            Refusal::NotAdmin { org, change: change @ AdminOnly::Members } => {
                PageError::Forbidden(change.refusal(&org))
            }
            Refusal::Store(e) => e.into(),
        }
    }
}

impl From<templates::TemplateError> for PageError {
    fn from(e: templates::TemplateError) -> PageError {
        PageError::Internal(e.to_string())
    }
}

impl PageError {
    fn status_and_text(&self) -> (StatusCode, String, String) {
        match self {
            PageError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                format!("No such {what}"),
                format!("This {what} does not exist, or it belongs to an organisation you are not a member of."),
            ),
            PageError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed".into(), m.clone()),
            PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, "That did not work".into(), m.clone()),
            PageError::SignIn { .. } => (StatusCode::UNAUTHORIZED, "Sign in".into(), "Please sign in.".into()),
            PageError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable".into(),
                "booboo cannot reach its database right now. Reload this page in a few seconds.".into(),
            ),
            PageError::DiskFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The server's disk is full".into(),
                "booboo could not save this change because its disk is full; nothing was changed. \
                 Free space on the server, then try again."
                    .into(),
            ),
            PageError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong".into(),
                "This page could not be shown; the server log has the details.".into(),
            ),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let PageError::SignIn { next } = &self {
            let target = if next == "/" || next.is_empty() {
                "/signin".to_string()
            } else {
                format!("/signin?{}", serde_urlencoded::to_string([("next", next)]).unwrap_or_default())
            };
            return Redirect::to(&target).into_response();
        }
        if let PageError::Internal(detail) = &self {
            tracing::error!("dashboard page failed: {detail}");
        }
        let (status, title, message) = self.status_and_text();
        let body = templates::render(
            "error.html",
            minijinja::context! { title => title, message => message, status => status.as_u16() },
        )
        .unwrap_or_else(|e| {
            tracing::error!("cannot render the error page: {e}");
            format!("{title}\n\n{message}\n")
        });
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(5));
        }
        response
    }
}

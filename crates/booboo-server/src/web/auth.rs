//! First run (the setup link), sign-in, sign-out and accepting invitations.

use super::form::FormData;
use super::page_error::PageError;
use super::session::{self, ClientAddress, SignedIn};
use super::templates::page;
use crate::app::AppState;
use crate::cli::check_email;
use crate::{clock, secrets};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use std::sync::LazyLock;

/// Failed sign-ins allowed per account, and per address, within the window.
const ACCOUNT_ATTEMPTS: i64 = 5;
const ADDRESS_ATTEMPTS: i64 = 30;
const ATTEMPT_WINDOW_MS: i64 = 15 * 60_000;
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Checked against when the email is unknown, so that a wrong email takes
/// as long to refuse as a wrong password and does not reveal who has an
/// account.
static UNKNOWN_USER_HASH: LazyLock<String> =
    LazyLock::new(|| secrets::hash_password("no user has this password").unwrap_or_default());

#[derive(Deserialize)]
pub struct NextParam {
    #[serde(default)]
    next: String,
}

/// Only paths on this server: a sign-in link must not send people elsewhere.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next
    } else {
        "/projects"
    }
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A new password and its repetition, checked; the message says what to fix.
pub fn check_new_password(form: &FormData, field: &str, repeat: &str) -> Result<String, String> {
    let password = form.secret(field);
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("The password must be at least {MIN_PASSWORD_CHARS} characters long."));
    }
    if password != form.secret(repeat) {
        return Err("The two passwords differ; type the same password twice.".into());
    }
    Ok(password.to_string())
}

fn hash(password: &str) -> Result<String, PageError> {
    secrets::hash_password(password).map_err(PageError::Internal)
}

// --- first run ----------------------------------------------------------

pub async fn setup_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let valid = state.store.setup_token_valid(&secrets::token_hash(&token)).await?;
    let (csrf, cookie) = session::anonymous_form_token(&state, &headers)?;
    let status = if valid { StatusCode::OK } else { StatusCode::NOT_FOUND };
    let body = page("setup.html", context! { valid, csrf, token, email => "" })?;
    Ok(with_cookie((status, body).into_response(), cookie))
}

pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    session::check_anonymous_form(&headers, &form)?;
    let retry = |message: String| -> Result<Response, PageError> {
        let body = page(
            "setup.html",
            context! { valid => true, csrf => form.get("csrf"), token, email => form.get("email"), error => message },
        )?;
        Ok((StatusCode::UNPROCESSABLE_ENTITY, body).into_response())
    };
    let email = match check_email(form.get("email")) {
        Ok(email) => email,
        Err(_) => return retry("Enter an email address such as you@example.com.".into()),
    };
    let password = match check_new_password(&form, "password", "password_repeat") {
        Ok(p) => p,
        Err(message) => return retry(message),
    };
    let user = state
        .store
        .create_first_admin(&secrets::token_hash(&token), &email, &hash(&password)?, clock::now_millis())
        .await?;
    tracing::info!(email = %user.email, "first administrator created through the setup link");
    let cookie = session::start(&state, user.id).await?;
    Ok(with_cookie(Redirect::to("/projects").into_response(), Some(cookie)))
}

// --- sign-in and sign-out -------------------------------------------------

pub async fn sign_in_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed_in: Option<SignedIn>,
    Query(NextParam { next }): Query<NextParam>,
) -> Result<Response, PageError> {
    if signed_in.is_some() {
        return Ok(Redirect::to(safe_next(&next)).into_response());
    }
    let (csrf, cookie) = session::anonymous_form_token(&state, &headers)?;
    let body = page("signin.html", context! { csrf, next, email => "" })?;
    Ok(with_cookie(body.into_response(), cookie))
}

pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    form: FormData,
) -> Result<Response, PageError> {
    session::check_anonymous_form(&headers, &form)?;
    let email = form.get("email").to_ascii_lowercase();
    let next = form.get("next");
    let refuse = |status: StatusCode, message: &str| -> Result<Response, PageError> {
        let body = page("signin.html", context! { csrf => form.get("csrf"), next, email => &email, error => message })?;
        Ok((status, body).into_response())
    };
    let account_key = format!("account:{email}");
    let address_key = format!("address:{address}");
    let since = clock::now_millis() - ATTEMPT_WINDOW_MS;
    if state.store.sign_in_failures(&account_key, since).await? >= ACCOUNT_ATTEMPTS {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins for this account. Wait 15 minutes and try again, or ask an administrator.",
        );
    }
    if state.store.sign_in_failures(&address_key, since).await? >= ADDRESS_ATTEMPTS {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins from your network address. Wait 15 minutes and try again.",
        );
    }
    let user = state.store.user_by_email(&email).await?;
    let password = form.secret("password").to_string();
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| UNKNOWN_USER_HASH.clone());
    // Argon2 is slow by design; keep it off the async workers.
    let matches = tokio::task::spawn_blocking(move || secrets::verify_password(&password, &stored_hash))
        .await
        .map_err(|e| PageError::Internal(format!("password check: {e}")))?;
    let Some(user) = user.filter(|_| matches) else {
        state.store.record_sign_in_failure(&[account_key, address_key], clock::now_millis()).await?;
        return refuse(StatusCode::UNAUTHORIZED, "Wrong email or password.");
    };
    state.store.clear_sign_in_failures(&account_key).await?;
    let cookie = session::start(&state, user.id).await?;
    Ok(with_cookie(Redirect::to(safe_next(next)).into_response(), Some(cookie)))
}

pub async fn sign_out(
    State(state): State<AppState>,
    signed_in: SignedIn,
    form: FormData,
) -> Result<Response, PageError> {
    signed_in.check_csrf(&form)?;
    state.store.end_session(&signed_in.token_hash).await?;
    Ok(with_cookie(Redirect::to("/signin").into_response(), Some(session::cleared(&state)?)))
}

// --- invitations ------------------------------------------------------------

pub async fn invitation_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let invitation = state
        .store
        .invitation(&secrets::token_hash(&token), clock::now_millis())
        .await?
        .ok_or(PageError::NotFound("invitation"))?;
    let has_account = state.store.user_by_email(&invitation.email).await?.is_some();
    let (csrf, cookie) = session::anonymous_form_token(&state, &headers)?;
    let body = page("invitation.html", context! { invitation, has_account, csrf, token })?;
    Ok(with_cookie(body.into_response(), cookie))
}

pub async fn accept_invitation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    session::check_anonymous_form(&headers, &form)?;
    let token_hash = secrets::token_hash(&token);
    let invitation =
        state.store.invitation(&token_hash, clock::now_millis()).await?.ok_or(PageError::NotFound("invitation"))?;
    let has_account = state.store.user_by_email(&invitation.email).await?.is_some();
    let password_hash = if has_account {
        // Joining keeps the existing password; nothing is signed in here.
        String::new()
    } else {
        match check_new_password(&form, "password", "password_repeat") {
            Ok(password) => hash(&password)?,
            Err(message) => {
                let body = page(
                    "invitation.html",
                    context! { invitation, has_account, csrf => form.get("csrf"), token, error => message },
                )?;
                return Ok((StatusCode::UNPROCESSABLE_ENTITY, body).into_response());
            }
        }
    };
    let (user, created) = state.store.accept_invitation(&token_hash, &password_hash, clock::now_millis()).await?;
    if !created {
        return Ok(Redirect::to("/signin?next=/projects").into_response());
    }
    let cookie = session::start(&state, user.id).await?;
    Ok(with_cookie(Redirect::to("/projects").into_response(), Some(cookie)))
}

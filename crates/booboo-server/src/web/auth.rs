//! First run (the setup link), sign-in, sign-out, accepting invitations and
//! password links.

use super::account_mail;
use super::form::FormData;
use super::local_path::same_origin_path;
use super::page_error::PageError;
use super::session::{self, ClientAddress, SignedIn};
use super::templates::page;
use super::time_text;
use crate::identifiers::check_email;
use crate::mail::Mailer;
use crate::state::AppState;
use crate::store::{SignInLimits, SignInReservation, StoreError};
use crate::{clock, secrets};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use std::sync::{Arc, LazyLock};

/// Password checks per address, and per account before it is slowed, in a
/// 15-minute window (docs/security.md, "Sign-in and redirects"). There is
/// no lockout: a slowed account still gets one check a second, so its
/// owner gets in with the right password while someone else guesses.
const SIGN_IN_LIMITS: SignInLimits =
    SignInLimits { window_ms: 15 * 60_000, checks_per_address: 10, checks_per_account: 5, slowed_interval_ms: 1000 };
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Password-reset e-mails asked for per address, and per account before it
/// is slowed, in an hour (docs/security.md, "Accounts and links"): enough
/// for someone who mistyped, too few to fill an inbox. A slowed account
/// gets one more e-mail every 20 minutes. The same counters as sign-in,
/// under keys of their own.
const RESET_LIMITS: SignInLimits = SignInLimits {
    window_ms: 3_600_000,
    checks_per_address: 10,
    checks_per_account: 3,
    slowed_interval_ms: 20 * 60_000,
};

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
    same_origin_path(next, "/projects")
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// A page whose form is sent before sign-in: the form's token comes from
/// the browser's form cookie, which is set here when it has none yet.
fn anonymous_form_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    name: &str,
    context: impl FnOnce(String) -> minijinja::Value,
) -> Result<Response, PageError> {
    let (csrf, cookie) = session::anonymous_form_token(state, headers)?;
    let body = page(name, context(csrf))?;
    Ok(with_cookie((status, body).into_response(), cookie))
}

/// A page opened from a link: 404 when the link is no longer valid.
fn link_status(valid: bool) -> StatusCode {
    if valid {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
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

/// Argon2 is slow by design: hashing runs on the blocking pool, so the
/// async workers keep serving other requests meanwhile.
pub async fn hash_password(password: String) -> Result<String, PageError> {
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(|e| PageError::Internal(format!("password hashing: {e}")))?
        .map_err(PageError::Internal)
}

/// Checks a password against a stored hash on the blocking pool; `None`
/// (no such user) checks against a hash no password matches, so an unknown
/// email takes as long to refuse as a wrong password.
pub async fn verify_password(password: String, stored_hash: Option<String>) -> Result<bool, PageError> {
    tokio::task::spawn_blocking(move || {
        let matches = secrets::verify_password(&password, stored_hash.as_deref().unwrap_or(&UNKNOWN_USER_HASH));
        matches && stored_hash.is_some()
    })
    .await
    .map_err(|e| PageError::Internal(format!("password check: {e}")))
}

// --- first run ----------------------------------------------------------

pub async fn setup_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let valid = state.store.setup_token_valid(&secrets::token_hash(&token), clock::now_millis()).await?;
    anonymous_form_page(&state, &headers, link_status(valid), "setup.html", |csrf| {
        context! { valid, csrf, token, email => "" }
    })
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
        .create_first_admin(&secrets::token_hash(&token), &email, &hash_password(password).await?, clock::now_millis())
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
    let can_reset = state.mailer.is_some();
    anonymous_form_page(&state, &headers, StatusCode::OK, "signin.html", |csrf| {
        context! { csrf, next, email => "", can_reset }
    })
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
        let can_reset = state.mailer.is_some();
        let body = page(
            "signin.html",
            context! { csrf => form.get("csrf"), next, email => &email, error => message, can_reset },
        )?;
        Ok((status, body).into_response())
    };
    // The email is hashed into the key: any text can be typed there, and
    // the limits table should hold neither emails nor unbounded keys.
    let account_key = format!("account:{}", secrets::token_hash(&email));
    let address_key = format!("address:{address}");
    let reservation =
        state.store.reserve_sign_in(&address_key, &account_key, &SIGN_IN_LIMITS, clock::now_millis()).await?;
    let (limit, retry_after_ms, message) = match reservation {
        SignInReservation::Granted => ("", 0, String::new()),
        SignInReservation::AddressLimited { retry_after_ms } => (
            "address",
            retry_after_ms,
            format!(
                "Too many failed sign-ins from your network address. Try again in {}.",
                time_text::duration_words(retry_after_ms)
            ),
        ),
        SignInReservation::AccountSlowed { retry_after_ms } => (
            "account",
            retry_after_ms,
            "This account had many failed sign-ins, so it takes one attempt per second. Try again in a moment.".into(),
        ),
    };
    if reservation != SignInReservation::Granted {
        state.metrics.sign_in_refused(limit);
        let mut response = refuse(StatusCode::TOO_MANY_REQUESTS, &message)?;
        let seconds = (retry_after_ms.max(1) + 999) / 1000;
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(response);
    }
    let user = state.store.user_by_email(&email).await?;
    let password = form.secret("password").to_string();
    let matches = verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let Some(user) = user.filter(|_| matches) else {
        // The check stays counted: that is what the limits count.
        return refuse(StatusCode::UNAUTHORIZED, "Wrong email or password.");
    };
    state.store.sign_in_succeeded(&address_key, &account_key).await?;
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
    anonymous_form_page(&state, &headers, StatusCode::OK, "invitation.html", |csrf| {
        context! { invitation, has_account, csrf, token }
    })
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
            Ok(password) => hash_password(password).await?,
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

// --- password links -----------------------------------------------------------

pub async fn password_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let user = state.store.password_link(&secrets::token_hash(&token), clock::now_millis()).await?;
    let can_reset = state.mailer.is_some();
    anonymous_form_page(&state, &headers, link_status(user.is_some()), "password.html", |csrf| {
        context! { user, csrf, token, can_reset }
    })
}

pub async fn use_password_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    session::check_anonymous_form(&headers, &form)?;
    let token_hash = secrets::token_hash(&token);
    let password = match check_new_password(&form, "password", "password_repeat") {
        Ok(password) => password,
        Err(message) => {
            let user = state.store.password_link(&token_hash, clock::now_millis()).await?;
            let status = if user.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::NOT_FOUND };
            let body = page(
                "password.html",
                context! { user, csrf => form.get("csrf"), token, error => message, can_reset => state.mailer.is_some() },
            )?;
            return Ok((status, body).into_response());
        }
    };
    let password_hash = hash_password(password).await?;
    let user = match state.store.use_password_link(&token_hash, &password_hash, clock::now_millis()).await {
        Ok(user) => user,
        Err(StoreError::NotFound(_)) => {
            let body = page(
                "password.html",
                context! { user => None::<()>, csrf => form.get("csrf"), token, can_reset => state.mailer.is_some() },
            )?;
            return Ok((StatusCode::NOT_FOUND, body).into_response());
        }
        Err(other) => return Err(other.into()),
    };
    tracing::info!(email = %user.email, "password set through a password link");
    let cookie = session::start(&state, user.id).await?;
    Ok(with_cookie(Redirect::to("/projects").into_response(), Some(cookie)))
}

// --- forgotten passwords --------------------------------------------------------

/// `GET /forgot-password`: asks for an address; without e-mail configured,
/// says whom to ask instead.
pub async fn forgot_password_form(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, PageError> {
    let enabled = state.mailer.is_some();
    let status = if enabled { StatusCode::OK } else { StatusCode::NOT_FOUND };
    anonymous_form_page(&state, &headers, status, "forgot_password.html", |csrf| {
        context! { enabled, csrf, email => "" }
    })
}

/// `POST /forgot-password`: the answer is the same whether or not an
/// account uses the address, and comes before any lookup or e-mail, so
/// neither its words nor its timing tell who has an account. The e-mail
/// is sent from a task of its own.
pub async fn forgot_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    form: FormData,
) -> Result<Response, PageError> {
    session::check_anonymous_form(&headers, &form)?;
    let Some(mailer) = state.mailer.clone() else {
        let body = page("forgot_password.html", context! { enabled => false })?;
        return Ok((StatusCode::NOT_FOUND, body).into_response());
    };
    let email = match check_email(form.get("email")) {
        Ok(email) => email,
        Err(_) => {
            let body = page(
                "forgot_password.html",
                context! {
                    enabled => true, csrf => form.get("csrf"), email => form.get("email"),
                    error => "Enter an email address such as you@example.com.",
                },
            )?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, body).into_response());
        }
    };
    // Counted whether or not an account exists, so the limits say nothing
    // about that either; the e-mail is hashed into its key, as in sign-in.
    let account_key = format!("reset-account:{}", secrets::token_hash(&email));
    let address_key = format!("reset-address:{address}");
    match state.store.reserve_sign_in(&address_key, &account_key, &RESET_LIMITS, clock::now_millis()).await? {
        SignInReservation::Granted => {
            tokio::spawn(send_password_reset(state.clone(), mailer, email.clone()));
        }
        SignInReservation::AddressLimited { retry_after_ms } => {
            tracing::info!(%address, "password-reset request refused: too many from this address");
            let message = format!(
                "Too many password-reset requests from your network address. Try again in {}.",
                time_text::duration_words(retry_after_ms)
            );
            let body = page(
                "forgot_password.html",
                context! { enabled => true, csrf => form.get("csrf"), email => &email, error => message },
            )?;
            let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
            let seconds = (retry_after_ms.max(1) + 999) / 1000;
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return Ok(response);
        }
        SignInReservation::AccountSlowed { .. } => {
            // The same answer as a sent e-mail: the owner already has
            // several links in their inbox, and nobody else learns more.
            tracing::info!("password-reset e-mail held back: this address was sent several within the hour");
        }
    }
    let body = page(
        "forgot_password.html",
        context! { enabled => true, sent => true, email => &email, lifetime_days => state.config.link_lifetime_days },
    )?;
    Ok(body.into_response())
}

/// Creates a one-time password link for the account using `email`, if
/// any, and e-mails it there. Failures are logged: the person who asked
/// has their answer already and can ask again.
async fn send_password_reset(state: AppState, mailer: Arc<Mailer>, email: String) {
    let sent = async {
        let Some(user) = state.store.user_by_email(&email).await.map_err(|e| e.to_string())? else {
            return Ok(false);
        };
        let token = secrets::new_session_token();
        let now = clock::now_millis();
        state
            .store
            .create_password_link(&secrets::token_hash(&token), user.id, now, now + state.config.link_lifetime_ms())
            .await
            .map_err(|e| e.to_string())?;
        let mail = account_mail::password_reset(&state, &user.email, &state.config.password_link_url(&token))?;
        mailer.send(mail).await.map_err(|e| e.to_string())?;
        Ok::<bool, String>(true)
    }
    .await;
    match sent {
        Ok(true) => tracing::info!(%email, "password-reset e-mail sent"),
        Ok(false) => tracing::info!("password reset asked for an address without an account; nothing sent"),
        Err(error) => tracing::warn!(%email, %error, "password-reset e-mail not sent"),
    }
}

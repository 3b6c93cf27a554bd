//! Who is signed in, and the CSRF token every form carries.
//!
//! A session is a random cookie whose hash is stored in the database, so it
//! survives restarts and any node of a multi-node setup accepts it. Forms of
//! a session carry the session's CSRF token; forms shown before sign-in
//! (sign-in, setup, invitations) carry a token that must match a cookie
//! (double submit), which a page on another site can neither read nor set.

use super::form::FormData;
use super::page_error::PageError;
use crate::state::AppState;
use crate::store::{Session, User, Viewer};
use crate::{clock, secrets};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use minijinja::{context, Value};
use std::net::IpAddr;

pub const SESSION_COOKIE: &str = "booboo_session";
const FORM_COOKIE: &str = "booboo_form";
const SESSION_LIFETIME_MS: i64 = 30 * 86_400_000;

pub struct SignedIn {
    pub user: User,
    pub session: Session,
    pub token_hash: String,
}

impl SignedIn {
    pub fn viewer(&self) -> Viewer {
        self.user.viewer()
    }

    /// What every page's header needs: who is signed in, and the token for
    /// the sign-out form.
    pub fn me(&self) -> Value {
        context! { email => self.user.email, is_admin => self.user.is_admin, csrf => self.session.csrf_token }
    }

    /// Refuses a form that does not carry this session's token.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), PageError> {
        if same_secret(form.get("csrf"), &self.session.csrf_token) {
            Ok(())
        } else {
            Err(PageError::Forbidden(
                "this form was not sent from a booboo page of your current session; reload the page and try again"
                    .into(),
            ))
        }
    }
}

async fn signed_in_from(parts: &Parts, state: &AppState) -> Result<Option<SignedIn>, PageError> {
    let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) else { return Ok(None) };
    let token_hash = secrets::token_hash(&token);
    Ok(state.store.session(&token_hash, clock::now_millis()).await?.map(|(user, session)| SignedIn {
        user,
        session,
        token_hash,
    }))
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        signed_in_from(parts, state).await?.ok_or_else(|| {
            // After sign-in, come back to the page asked for; after a form
            // post, to the page that showed the form.
            let next = if parts.method == axum::http::Method::GET {
                parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default()
            } else {
                "/".to_string()
            };
            PageError::SignIn { next }
        })
    }
}

impl OptionalFromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        signed_in_from(parts, state).await
    }
}

/// Starts a session for a user and returns the cookie that names it.
pub async fn start(state: &AppState, user_id: i64) -> Result<HeaderValue, PageError> {
    let token = secrets::new_session_token();
    let now = clock::now_millis();
    let session = Session {
        user_id,
        csrf_token: secrets::new_session_token(),
        created_at: now,
        expires_at: now + SESSION_LIFETIME_MS,
    };
    state.store.create_session(&secrets::token_hash(&token), user_id, &session).await?;
    cookie(state, SESSION_COOKIE, &token, SESSION_LIFETIME_MS / 1000)
}

/// A cookie that removes the session cookie.
pub fn cleared(state: &AppState) -> Result<HeaderValue, PageError> {
    cookie(state, SESSION_COOKIE, "", 0)
}

fn cookie(state: &AppState, name: &str, value: &str, max_age_seconds: i64) -> Result<HeaderValue, PageError> {
    // `Secure` only when people reach booboo over https: over plain http the
    // browser would otherwise drop the cookie and nobody could sign in.
    let secure = if state.config.public_url.starts_with("https://") { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}"))
        .map_err(|e| PageError::Internal(format!("cookie: {e}")))
}

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// The token for a form shown before sign-in, and the cookie to set if the
/// browser does not have one yet.
pub fn anonymous_form_token(state: &AppState, headers: &HeaderMap) -> Result<(String, Option<HeaderValue>), PageError> {
    match cookie_value(headers, FORM_COOKIE) {
        Some(token) if token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()) => Ok((token, None)),
        _ => {
            let token = secrets::new_session_token();
            let set = cookie(state, FORM_COOKIE, &token, 86_400)?;
            Ok((token, Some(set)))
        }
    }
}

pub fn check_anonymous_form(headers: &HeaderMap, form: &FormData) -> Result<(), PageError> {
    match cookie_value(headers, FORM_COOKIE) {
        Some(cookie) if same_secret(form.get("csrf"), &cookie) => Ok(()),
        _ => Err(PageError::Forbidden(
            "this form has expired or cookies are blocked; reload the page, then submit it again".into(),
        )),
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    !b.is_empty() && a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The address a request came from, for sign-in limits. Requests that did
/// not come over a socket (tests calling the router) share one address.
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        Ok(ClientAddress(client_address(peer, forwarded, &state.config.trusted_proxies)))
    }
}

/// The address a request came from. From a trusted proxy, that is the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy (the
/// entries before it could be written by anyone); from anyone else, the
/// header is ignored.
pub fn client_address(peer: Option<IpAddr>, forwarded: Option<&str>, trusted: &[IpAddr]) -> String {
    let Some(peer) = peer else { return "unknown".into() };
    if trusted.contains(&peer) {
        if let Some(forwarded) = forwarded {
            let hops = forwarded.split(',').filter_map(|hop| hop.trim().parse::<IpAddr>().ok());
            if let Some(client) = hops.rev().find(|ip| !trusted.contains(ip)) {
                return client.to_string();
            }
        }
    }
    peer.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let trusted = [local];
        assert_eq!(client_address(Some(local), Some("198.51.100.7"), &trusted), "198.51.100.7");
        assert_eq!(client_address(Some(local), Some("1.2.3.4, 198.51.100.7, 127.0.0.1"), &trusted), "198.51.100.7");
        assert_eq!(client_address(Some(stranger), Some("198.51.100.7"), &trusted), "203.0.113.9");
        assert_eq!(client_address(Some(local), Some("garbage"), &trusted), "127.0.0.1");
        assert_eq!(client_address(None, None, &trusted), "unknown");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; booboo_session=abc; b=2"));
        assert_eq!(cookie_value(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie_value(&headers, "missing"), None);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("", ""));
        assert!(!same_secret("ab", "abc"));
    }
}

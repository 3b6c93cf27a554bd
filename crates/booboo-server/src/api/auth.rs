//! `Authorization: Bearer TOKEN` for the JSON API.

use crate::error::AppError;
use crate::secrets;
use crate::state::AppState;
use crate::store::User;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

/// The user an API token belongs to.
pub struct ApiUser(pub User);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            AppError::unauthorized(
                "missing Authorization header: send `Authorization: Bearer TOKEN` with a token from `booboo token create`",
            )
        })?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AppError::unauthorized("the Authorization header must be `Bearer TOKEN`"))?;
        let user = state
            .store
            .user_for_api_token(&secrets::token_hash(token))
            .await?
            .ok_or_else(|| AppError::unauthorized("unknown or revoked API token"))?;
        Ok(ApiUser(user))
    }
}

//! The router: every HTTP entry point, built without a socket so that tests
//! can call it directly. It only wires routes: the handlers live with
//! their page family, and the state they share is `state.rs`.

use crate::state::AppState;
use crate::{api, ingest, monitoring, web};
use axum::routing::{get, post};
use axum::Router;

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", post(ingest::receive))
        .route("/healthz", get(monitoring::health))
        .route("/metrics", get(monitoring::metrics))
        .merge(ingest::sentry::routes())
        .nest("/api/v1", api::routes())
        .merge(web::routes())
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

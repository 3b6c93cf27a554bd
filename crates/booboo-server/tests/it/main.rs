//! booboo-server's one integration-test binary.
//!
//! - `store_conformance`: every store test, run against SQLite always and
//!   against PostgreSQL when BOOBOO_TEST_DATABASE_URL names one.
//! - `search_api`: the issue list's search language through the API router.
//! - `search_store`: the issue search in the store, on both backends alike.
//! - `ingest_http`: the router over real HTTP semantics and a real SQLite.
//! - `sentry_http`: Sentry's envelope and store endpoints, the same way.
//! - `web_pages`: every dashboard page through the router on a seeded SQLite.

mod architecture;
mod ingest_http;
mod search_api;
mod search_store;
mod sentry_http;
mod store_conformance;
mod support;
mod web_pages;

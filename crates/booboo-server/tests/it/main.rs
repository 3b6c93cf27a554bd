//! booboo-server's one integration-test binary.
//!
//! - `store_conformance`: every store test, run against SQLite always and
//!   against PostgreSQL when BOOBOO_TEST_DATABASE_URL names one.
//! - `search_api`: the issue list's search language through the API router.
//! - `search_store`: the issue search in the store, on both backends alike.
//! - `retention_store`: retention's rules, per backend, with the same macro.
//! - `ingest_http`: the router over real HTTP semantics and a real SQLite.
//! - `sentry_http`: Sentry's envelope and store endpoints, the same way.
//! - `project_settings_http`: a project's limits through the API.
//! - `resolve_api`: resolving in a release and ignoring through the API,
//!   on both backends.
//! - `sdk_capture_http`: envelopes captured from real Sentry SDKs, and the issues they make.
//! - `quota_http`: quotas and load shedding through the router.
//! - `quota_store`: quotas that keep counting, run per backend by `store_conformance`.
//! - `reading_pages`: the project settings page, and how an event and an issue read.
//! - `stored_payloads`: compressed payloads beside rows stored before compression.
//! - `web_pages`: every dashboard page through the router on a seeded SQLite.
//! - `ownership_http`: assignees, comments, activity and pending invitations
//!   through the API and the dashboard.
//! - `admin_checks_http`: changes only an organisation's admins may make,
//!   refused to members and outsiders in the same words through the API and
//!   the dashboard.

mod admin_checks_http;
mod architecture;
mod ingest_http;
mod ownership_http;
mod project_settings_http;
mod quota_http;
mod quota_store;
mod reading_pages;
mod resolve_api;
mod sdk_capture_http;
mod search_api;
mod search_store;
mod sentry_http;
mod stored_payloads;
#[macro_use]
mod store_conformance;
mod retention_store;
mod support;
mod web_pages;

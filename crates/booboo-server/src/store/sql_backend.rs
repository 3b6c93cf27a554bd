//! What makes a SQL backend of the store: every query module and trait impl
//! written once (the `*_sql.rs` modules, `rows.rs`, `batch_counters.rs`,
//! `stored_payload.rs`), expanded for one backend's types in one line of
//! `sqlite.rs` and `postgres.rs`. They are macros because sqlx's pool,
//! connection and row types differ per backend while the SQL does not; what
//! the SQL must say differently comes from the backend's `SQL`
//! ([`super::dialect::SqlDialect`]). Each backend adds `begin_write` (its
//! write transaction), `store_batch` (how a batch's transaction runs) and
//! `impl Maintenance`.

/// Expands the shared queries and every trait but `Maintenance` for
/// `$store`, whose fields `pool` and `installation_quota` and `payload_codec`
/// they use: `$pool`, `$conn` and `$row` are its sqlx types.
macro_rules! sql_backend {
    ($store:ident, $pool:ty, $conn:ty, $row:ty) => {
        super::rows::row_readers!($row);

        // The older query macros' names for parts of the dialect.
        fn q(sql: &str) -> String {
            SQL.placeholders(sql)
        }
        fn text_bind(text: &str) -> std::borrow::Cow<'_, str> {
            SQL.text(text)
        }
        const SKIP_LOCKED: &str = SQL.skip_locked;
        const LOCK_ISSUES: &str = SQL.for_update;

        super::quota_sql::quota_queries!($conn);
        super::search_sql::search_runner!($pool, $row, text_bind, SQL.search, VISIBLE_ORG);
        super::alert_sql::alert_queries!($conn, $row);
        super::retention_sql::retention_queries!($conn);
        super::key_sql::key_queries!($conn);
        super::batch_counters::batch_counter_queries!($conn, text_bind, SQL.least, SQL.greatest);
        super::project_limits_sql::project_limits_queries!($conn);
        super::merge_sql::merge_queries!($conn, SQL.for_update);
        super::resolve_sql::resolve_queries!($conn);
        super::activity_sql::activity_queries!($conn, $row);

        // The store's traits.
        super::stored_payload::payload_dictionary_queries!($store, $pool);
        super::accounts_sql::accounts_store!($store, $conn);
        super::organisations_sql::organisations_store!($store, $conn);
        super::projects_sql::projects_store!($store, $conn);
        super::issues_sql::issue_reads_store!($store, $conn);
        super::triage_sql::triage_store!($store, $conn);
        super::alert_sql::alerting_store!($store, $conn);
        super::lifecycle_sql::lifecycle_store!($store, $conn);
        super::ingest_sql::ingest_store!($store, $conn);
    };
}

pub(super) use sql_backend;

//! The PostgreSQL store: the scale-out path, several booboo nodes sharing one
//! database. Correctness across nodes comes from the database alone: unique
//! constraints with `INSERT … ON CONFLICT`, row locks taken by upserts, and
//! advisory locks around migrations; no node keeps state of its own.

use super::batch_counters::BatchCounters;
use super::batch_rows::bind_postgres as bind_rows;
use super::dialect::SqlDialect;
use super::migrations::{self, Backend};
use super::rows::*;
use super::search_sql::issue_list_query;
use super::*;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;

pub struct PostgresStore {
    pool: PgPool,
    installation_quota: quota::InstallationQuota,
    payload_codec: stored_payload::PayloadCodec,
}

/// What this backend does differently: see `dialect.rs`.
const SQL: &SqlDialect = &super::dialect::POSTGRES;

super::sql_backend::sql_backend!(PostgresStore, PgPool, sqlx::PgConnection, PgRow);

/// The oldest PostgreSQL booboo runs on (identity columns, `ON CONFLICT`).
const MINIMUM_SERVER_VERSION: i64 = 120000;

/// Serialises migrations when several nodes start at once.
const MIGRATION_LOCK: i64 = 0x626f_6f62_6f6f;

/// A failed attempt at a batch, and whether another attempt may succeed.
struct BatchFailure {
    error: StoreError,
    lost_race: bool,
}

fn batch_failure(doing: &'static str) -> impl FnOnce(sqlx::Error) -> BatchFailure {
    move |e| BatchFailure { lost_race: is_lost_race(&e), error: unavailable(doing)(e) }
}

impl PostgresStore {
    /// The batch of `Ingest::store_events`: attempts in event order (see
    /// `store_batch_once`), again while it loses races to other nodes.
    async fn store_batch(&self, batch: &[NewEvent], keys: &[&str]) -> StoreResult<KeyedBatch> {
        let mut attempt = 1;
        loop {
            match self.store_batch_once(batch, keys).await {
                Err(failure) if attempt < BATCH_ATTEMPTS && failure.lost_race => {
                    tracing::debug!("batch lost a race with another node ({}); retrying", failure.error);
                    attempt += 1;
                }
                result => return result.map_err(|failure| failure.error),
            }
        }
    }

    /// Starts a write transaction through the pool; the rows it must hold
    /// it locks as it goes (`SqlDialect::for_update`, upserts).
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(unavailable("starting a transaction"))
    }

    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        let shown = redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Incompatible(format!("invalid PostgreSQL URL {shown}: {e}")))?;
        // One direct connection first: a pool only reports "timed out", while
        // a single attempt says why (refused, unknown database, bad password).
        let probe = tokio::time::timeout(
            Duration::from_secs(10),
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!("cannot connect to PostgreSQL at {shown}: no answer within 10 s"))
        })?
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL at {shown}: {}", one_line(&e))))?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(5))
            // Never hand out a connection whose transaction did not end
            // cleanly.
            .after_release(|conn, _| release_if_clean(conn))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot connect to PostgreSQL at {shown}: {}", one_line(&e)))
            })?;
        let version: String = sqlx::query_scalar("SHOW server_version_num")
            .fetch_one(&pool)
            .await
            .map_err(unavailable("reading the server version"))?;
        let version: i64 = version.trim().parse().unwrap_or(0);
        if version < MINIMUM_SERVER_VERSION {
            return Err(StoreError::Incompatible(format!(
                "PostgreSQL at {shown} is version {}.{}, too old: booboo needs 12 or newer",
                version / 10000,
                version % 10000
            )));
        }
        let store = PostgresStore { pool, installation_quota: Default::default(), payload_codec: Default::default() };
        store.migrate().await?;
        // Bodies compressed with a dictionary read back from the first request.
        let dictionaries = store.payload_dictionaries().await?;
        store.payload_codec.install(&dictionaries, crate::clock::now_millis());
        Ok(store)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(unavailable("waiting for the migration lock"))?;
        let result = self.migrate_locked(&mut conn).await;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await;
        result
    }

    async fn migrate_locked(&self, conn: &mut sqlx::PgConnection) -> StoreResult<()> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await
        .map_err(unavailable("creating the migrations table"))?;
        let applied: Vec<String> = sqlx::query_scalar("SELECT name FROM schema_migrations ORDER BY name")
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable("reading applied migrations"))?;
        for migration in migrations::pending(Backend::Postgres, &applied).map_err(StoreError::Incompatible)? {
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(unavailable("starting a migration"))?;
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Incompatible(format!("migration {} failed: {e}", migration.name)))?;
            sqlx::query(
                "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, (extract(epoch FROM now()) * 1000)::bigint)",
            )
            .bind(migration.name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("recording a migration"))?;
            tx.commit().await.map_err(unavailable("committing a migration"))?;
            tracing::info!(migration = migration.name, "applied migration");
        }
        Ok(())
    }

    /// One attempt at a batch: events in a fixed order (project, then
    /// fingerprint; an issue's events in the order they came) so that
    /// concurrent batches on other nodes take row locks in the same order
    /// and rarely deadlock.
    async fn store_batch_once(&self, batch: &[NewEvent], keys: &[&str]) -> Result<KeyedBatch, BatchFailure> {
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by(|&a, &b| {
            (batch[a].project_id, &batch[a].processed.fingerprint.fingerprint)
                .cmp(&(batch[b].project_id, &batch[b].processed.fingerprint.fingerprint))
        });
        let mut tx = self.pool.begin().await.map_err(batch_failure("starting a batch"))?;
        let revoked = revoked_keys(&mut tx, keys).await.map_err(batch_failure("checking ingestion keys"))?;
        if !revoked.is_empty() {
            return Ok(KeyedBatch::KeysRevoked(revoked));
        }
        let rules = rules_for_batch(&mut tx, batch).await.map_err(batch_failure("reading alert rules"))?;
        // Quota windows are locked before any issue row, in project order.
        let mut quotas = quotas_for_batch(&mut tx, batch, self.installation_quota.get())
            .await
            .map_err(batch_failure("reading the projects' quotas"))?;
        let mut counters = BatchCounters::default();
        let outcomes = store_batch_events(&mut tx, batch, &order, &rules, &mut quotas, &mut counters)
            .await
            .map_err(|failure| BatchFailure { lost_race: failure.lost_race(), error: failure.into_store_error() })?;
        save_quotas(&mut tx, &quotas).await.map_err(batch_failure("saving the projects' quotas"))?;
        write_batch_counters(&mut tx, &counters).await.map_err(batch_failure("counting a batch's events"))?;
        tx.commit().await.map_err(batch_failure("committing a batch"))?;
        Ok(KeyedBatch::Stored(outcomes))
    }
}

/// sqlx errors can span lines; a start-up failure should read as one.
fn one_line(e: &sqlx::Error) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

#[async_trait]
impl Maintenance for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn refresh_planner_statistics(&self) -> StoreResult<()> {
        Ok(()) // autovacuum analyses changed tables by itself
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(unavailable("pinging"))?;
        Ok(())
    }

    async fn check_writable(&self) -> StoreResult<()> {
        // A write that needs new space where events are stored. Updating an
        // existing row fits into its page and succeeds on a full disk, so
        // the probe is a temporary table in the events table's tablespace:
        // its first row writes a new page to a new file, which fails with
        // 53100 when that file system is full. The rollback removes it; a
        // temporary table's name is the session's own, so nodes probing at
        // once do not clash.
        let mut tx = self.pool.begin().await.map_err(unavailable("starting a write probe"))?;
        let tablespace: String = sqlx::query_scalar(
            "SELECT spcname::text FROM pg_tablespace WHERE oid = COALESCE(\
               NULLIF((SELECT reltablespace FROM pg_class WHERE oid = 'events'::regclass), 0), \
               (SELECT dattablespace FROM pg_database WHERE datname = current_database()))",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable("finding the events table's tablespace"))?;
        let quoted = format!("\"{}\"", tablespace.replace('"', "\"\""));
        let create = format!("CREATE TEMPORARY TABLE booboo_write_probe (filler int) TABLESPACE {quoted}");
        sqlx::query(&create)
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("creating a write probe"))?;
        sqlx::query("INSERT INTO booboo_write_probe VALUES (1)")
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("writing a probe row"))?;
        tx.rollback().await.map_err(unavailable("removing the write probe"))?;
        Ok(())
    }

    async fn backup_to(&self, _dest: &std::path::Path) -> StoreResult<()> {
        Err(StoreError::Incompatible(
            "`booboo backup` copies SQLite databases; back up PostgreSQL with its own tools, \
             e.g. `pg_dump --format=custom` (docs/operations.md)"
                .into(),
        ))
    }

    async fn used_bytes(&self) -> StoreResult<u64> {
        let bytes: i64 = sqlx::query_scalar(super::retention_sql::POSTGRES_USED_BYTES)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable("measuring the database"))?;
        Ok(bytes.max(0) as u64)
    }

    /// Marks the space of deleted events reusable now rather than when
    /// autovacuum next comes by: a plain `VACUUM` (no lock against reads or
    /// writes; pages without dead rows are skipped). The table's files keep
    /// the space for new events rather than return it.
    async fn reclaim_space(&self, _keep_bytes: u64) -> StoreResult<()> {
        sqlx::raw_sql("VACUUM events").execute(&self.pool).await.map_err(unavailable("vacuuming events"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_lost_race;
    use sqlx::{Connection, PgConnection};

    /// Real errors from a real server: a serialisation failure is a lost
    /// race; an error whose text merely says "deadlock" is not. Runs when
    /// BOOBOO_TEST_DATABASE_URL names a PostgreSQL database.
    #[tokio::test]
    async fn lost_races_are_recognised_by_sqlstate_not_by_text() {
        let Some(url) = std::env::var("BOOBOO_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
            eprintln!("skipped: BOOBOO_TEST_DATABASE_URL is not set");
            return;
        };
        let mut a = PgConnection::connect(&url).await.unwrap();
        let mut b = PgConnection::connect(&url).await.unwrap();
        let table = format!("booboo_race_{}", crate::secrets::new_event_id());
        sqlx::query(&format!("CREATE TABLE {table} (id INT PRIMARY KEY, n INT)")).execute(&mut a).await.unwrap();
        sqlx::query(&format!("INSERT INTO {table} VALUES (1, 0)")).execute(&mut a).await.unwrap();

        for conn in [&mut a, &mut b] {
            sqlx::query("BEGIN ISOLATION LEVEL SERIALIZABLE").execute(&mut *conn).await.unwrap();
            sqlx::query(&format!("SELECT n FROM {table} WHERE id = 1")).execute(&mut *conn).await.unwrap();
        }
        sqlx::query(&format!("UPDATE {table} SET n = 1 WHERE id = 1")).execute(&mut a).await.unwrap();
        sqlx::query("COMMIT").execute(&mut a).await.unwrap();
        let lost = sqlx::query(&format!("UPDATE {table} SET n = 2 WHERE id = 1")).execute(&mut b).await.unwrap_err();
        sqlx::query("ROLLBACK").execute(&mut b).await.unwrap();
        assert!(is_lost_race(&lost), "{lost}");

        let raised = sqlx::query("DO $$ BEGIN RAISE EXCEPTION 'deadlock detected (40P01, 40001)'; END $$")
            .execute(&mut a)
            .await
            .unwrap_err();
        assert!(!is_lost_race(&raised), "{raised}");
        sqlx::query(&format!("DROP TABLE {table}")).execute(&mut a).await.unwrap();
    }
}

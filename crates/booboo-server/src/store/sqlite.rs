//! The SQLite store: the embedded default. WAL journal so that reads never
//! wait for the writer, `synchronous=FULL` so that a committed batch survives
//! a power cut, and one writer (the ingest queue) doing group commits.

use super::batch_counters::BatchCounters;
use super::batch_rows::bind_sqlite as bind_rows;
use super::dialect::SqlDialect;
use super::migrations::{self, Backend};
use super::rows::*;
use super::search_sql::issue_list_query;
use super::*;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::Connection;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub struct SqliteStore {
    pool: SqlitePool,
    /// A file beside the database that `check_writable` writes and removes;
    /// `None` for an in-memory database.
    space_probe: Option<PathBuf>,
    installation_quota: quota::InstallationQuota,
    payload_codec: stored_payload::PayloadCodec,
}

/// Bytes `check_writable` must be able to write beside the database.
const SPACE_PROBE_BYTES: usize = 1 << 20;

/// What this backend does differently: see `dialect.rs`.
const SQL: &SqlDialect = &super::dialect::SQLITE;

super::sql_backend::sql_backend!(SqliteStore, SqlitePool, sqlx::SqliteConnection, SqliteRow);

/// Free pages returned to the file system per `incremental_vacuum` step: a
/// short hold of the write lock each.
const VACUUM_STEP_PAGES: i64 = 256;

impl SqliteStore {
    /// The batch of `Ingest::store_keyed_events`, in one transaction under
    /// the write lock, events in the order they came.
    async fn store_batch(&self, batch: &[NewEvent], keys: &[&str]) -> StoreResult<KeyedBatch> {
        let mut tx = self.begin_write().await?;
        let revoked = revoked_keys(&mut tx, keys).await.map_err(unavailable("checking ingestion keys"))?;
        if !revoked.is_empty() {
            return Ok(KeyedBatch::KeysRevoked(revoked));
        }
        let rules = rules_for_batch(&mut tx, batch).await.map_err(unavailable("reading alert rules"))?;
        let mut quotas = quotas_for_batch(&mut tx, batch, self.installation_quota.get())
            .await
            .map_err(unavailable("reading the projects' quotas"))?;
        let mut counters = BatchCounters::default();
        let order: Vec<usize> = (0..batch.len()).collect();
        let outcomes = store_batch_events(&mut tx, batch, &order, &rules, &mut quotas, &mut counters)
            .await
            .map_err(EventsFailure::into_store_error)?;
        write_batch_counters(&mut tx, &counters).await.map_err(unavailable("counting a batch's events"))?;
        save_quotas(&mut tx, &quotas).await.map_err(unavailable("saving the projects' quotas"))?;
        tx.commit().await.map_err(unavailable("committing a batch"))?;
        Ok(KeyedBatch::Stored(outcomes))
    }

    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Incompatible(format!("invalid SQLite URL {url:?}: {e}")))?
            .create_if_missing(true)
            // Takes effect on a new database only (an existing one keeps its
            // mode until a VACUUM): retention then returns freed pages to
            // the file system a step at a time (docs/operations.md).
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let space_probe = options
            .get_filename()
            .parent()
            .filter(|dir| dir.is_dir())
            .map(|_| PathBuf::from(format!("{}-space-probe", options.get_filename().display())));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A transaction whose end failed leaves sqlx's count of open
            // transactions out of step with SQLite's (on SQLITE_FULL SQLite
            // rolls back by itself, so the pool's ROLLBACK fails too); reused,
            // such a connection would turn the next transaction into a
            // savepoint that never commits, or hold the write lock for ever.
            .after_release(|conn, _| release_if_clean(conn))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database {url:?}: {e}")))?;
        let store = SqliteStore {
            pool,
            space_probe,
            installation_quota: Default::default(),
            payload_codec: Default::default(),
        };
        store.migrate().await?;
        // Bodies compressed with a dictionary read back from the first request.
        let dictionaries = store.payload_dictionaries().await?;
        store.payload_codec.install(&dictionaries, crate::clock::now_millis());
        // Without statistics the planner guesses, and picks the project's
        // whole event index for searches a narrower one answers. 0x10002:
        // look at every table, not only those this connection used; the
        // limit keeps the analysis to a moment on a large database.
        sqlx::raw_sql("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
            .execute(&store.pool)
            .await
            .map_err(unavailable("gathering planner statistics"))?;
        Ok(store)
    }

    /// Starts a write transaction through the pool. `BEGIN IMMEDIATE` takes
    /// the write lock at once, so a transaction that reads before it writes
    /// (is there a user yet? does the organisation exist?) cannot be raced,
    /// and never fails midway upgrading a read lock.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(unavailable("starting a write transaction"))
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *conn)
        .await
        .map_err(unavailable("creating the migrations table"))?;
        let applied: Vec<String> = sqlx::query_scalar("SELECT name FROM schema_migrations ORDER BY name")
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable("reading applied migrations"))?;
        for migration in migrations::pending(Backend::Sqlite, &applied).map_err(StoreError::Incompatible)? {
            let mut tx = self.begin_write().await?;
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Incompatible(format!("migration {} failed: {e}", migration.name)))?;
            sqlx::query("INSERT INTO schema_migrations (name, applied_at) VALUES (?, strftime('%s','now') * 1000)")
                .bind(migration.name)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("recording a migration"))?;
            tx.commit().await.map_err(unavailable("committing a migration"))?;
            tracing::info!(migration = migration.name, "applied migration");
        }
        Ok(())
    }
}

/// Opens a SQLite file read-only and runs `PRAGMA integrity_check`; `Ok`
/// only for an intact booboo database whose migrations this binary knows.
pub async fn check_database_file(path: &std::path::Path) -> StoreResult<()> {
    let shown = path.display();
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| StoreError::Incompatible(format!("{shown} is not a SQLite database booboo can open: {e}")))?;
    let verdict: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .map_err(|e| StoreError::Incompatible(format!("{shown} is not a SQLite database: {e}")))?;
    if verdict != ["ok"] {
        return Err(StoreError::Incompatible(format!(
            "{shown} is damaged: {}",
            verdict.into_iter().take(3).collect::<Vec<_>>().join("; ")
        )));
    }
    let applied: Vec<String> = sqlx::query_scalar("SELECT name FROM schema_migrations ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .map_err(|_| StoreError::Incompatible(format!("{shown} is a SQLite database, but not one of booboo's")))?;
    migrations::pending(Backend::Sqlite, &applied).map_err(|e| StoreError::Incompatible(format!("{shown}: {e}")))?;
    let _ = conn.close().await;
    Ok(())
}

#[async_trait]
impl Maintenance for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn refresh_planner_statistics(&self) -> StoreResult<()> {
        // 0x10002 as at start: plain `optimize` looks only at tables this
        // connection has queried, and a pool connection may have queried none.
        sqlx::raw_sql("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
            .execute(&self.pool)
            .await
            .map_err(unavailable("refreshing planner statistics"))?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(unavailable("pinging"))?;
        Ok(())
    }

    async fn check_writable(&self) -> StoreResult<()> {
        // A small write into the database can succeed while a batch cannot
        // (the WAL file reuses its space), so ask the file system for room.
        let Some(path) = self.space_probe.clone() else { return Ok(()) };
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let written = std::fs::File::create(&path).and_then(|mut file| {
                file.write_all(&vec![0u8; SPACE_PROBE_BYTES])?;
                file.sync_all()
            });
            let _ = std::fs::remove_file(&path);
            written.map_err(|e| {
                let what = format!("writing {} bytes beside the database: {e}", SPACE_PROBE_BYTES);
                if e.raw_os_error() == Some(28) {
                    StoreError::DiskFull(what)
                } else {
                    StoreError::Unavailable(what)
                }
            })
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("checking free space: {e}")))?
    }

    async fn backup_to(&self, dest: &std::path::Path) -> StoreResult<()> {
        // VACUUM INTO reads one snapshot (every transaction committed before
        // it began, none after) and writes a compact new database; the live
        // database is only read. It is written under a temporary name and
        // renamed once complete and checked, so `dest` is whole or absent.
        let partial = PathBuf::from(format!("{}.partial", dest.display()));
        let _ = std::fs::remove_file(&partial);
        let result = async {
            sqlx::query("VACUUM INTO ?")
                .bind(partial.to_string_lossy().into_owned())
                .execute(&self.pool)
                .await
                .map_err(unavailable("copying the database"))?;
            check_database_file(&partial).await?;
            std::fs::rename(&partial, dest).map_err(|e| {
                StoreError::Unavailable(format!("renaming the finished backup to {}: {e}", dest.display()))
            })
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    async fn used_bytes(&self) -> StoreResult<u64> {
        let bytes: i64 = sqlx::query_scalar(super::retention_sql::SQLITE_USED_BYTES)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable("measuring the database"))?;
        Ok(bytes.max(0) as u64)
    }

    async fn reclaim_space(&self, keep_bytes: u64) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
        let (mode, page_size): (i64, i64) =
            sqlx::query_as("SELECT av.auto_vacuum, ps.page_size FROM pragma_auto_vacuum() av, pragma_page_size() ps")
                .fetch_one(&mut *conn)
                .await
                .map_err(unavailable("reading the vacuum mode"))?;
        // 2 is INCREMENTAL; a database created before it was the default
        // reuses its free pages but never returns them (one VACUUM switches it).
        if mode != 2 {
            return Ok(());
        }
        let keep_pages = keep_bytes as i64 / page_size.max(1);
        for _ in 0..64 {
            let free: i64 = sqlx::query_scalar("SELECT freelist_count FROM pragma_freelist_count()")
                .fetch_one(&mut *conn)
                .await
                .map_err(unavailable("counting free pages"))?;
            if free <= keep_pages {
                break;
            }
            let step = (free - keep_pages).min(VACUUM_STEP_PAGES);
            sqlx::query(&format!("PRAGMA incremental_vacuum({step})"))
                .execute(&mut *conn)
                .await
                .map_err(unavailable("returning free pages"))?;
        }
        Ok(())
    }
}

//! Backup and restore of the SQLite database, for `booboo backup` and
//! `booboo restore`, and the lock that tells the two apart from a running
//! server. The copy itself is the store's (`Maintenance::backup_to`); this module
//! does the file-level steps around it and checks every input first.

use crate::store::{sqlite, Maintenance};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The SQLite file a database URL names, or `None` for PostgreSQL or an
/// in-memory database.
pub fn sqlite_file(database_url: &str) -> Option<PathBuf> {
    if !database_url.starts_with("sqlite:") || database_url.contains(":memory:") || database_url.contains("mode=memory")
    {
        return None;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(database_url).ok()?;
    let path = options.get_filename();
    (!path.as_os_str().is_empty()).then(|| path.to_path_buf())
}

/// Held by `booboo serve` for as long as it runs on a SQLite database, and
/// by `booboo restore` while it swaps files: a second holder is refused.
/// The operating system drops the lock when the process ends, however.
pub struct DatabaseLock {
    _file: File,
}

pub fn lock_database(db: &Path) -> Result<DatabaseLock, String> {
    let path = PathBuf::from(format!("{}.lock", db.display()));
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(DatabaseLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(format!("a booboo server is running on {} (it holds {}): stop it first", db.display(), path.display()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// `booboo backup PATH`: a consistent copy of the live database at a new
/// path, taken while the server keeps ingesting.
pub async fn backup(store: &dyn Maintenance, dest: &Path) -> Result<(), String> {
    if store.backend() == crate::store::Backend::Postgres {
        // Nothing to copy here: say what to use instead, not that it failed.
        return store.backup_to(dest).await.map_err(|e| e.to_string());
    }
    if dest.exists() {
        return Err(format!("{} already exists: give a new file name (a backup never overwrites)", dest.display()));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(format!("the folder {} does not exist: create it first", parent.display()));
    }
    store.backup_to(dest).await.map_err(|e| format!("the backup failed, and the live database is untouched: {e}"))
}

/// `booboo restore PATH`: checks the backup, then puts it in place of the
/// configured database, keeping the previous files beside it. Refused while
/// a server runs on that database. Returns where the previous one went.
pub async fn restore(database_url: &str, from: &Path, now_text: &str) -> Result<Option<PathBuf>, String> {
    let db = sqlite_file(database_url)
        .ok_or("`booboo restore` restores SQLite databases; for PostgreSQL use pg_restore (docs/operations.md)")?;
    if !from.is_file() {
        return Err(format!("{} does not exist or is not a file", from.display()));
    }
    sqlite::check_database_file(from).await.map_err(|e| format!("not restoring: {e}"))?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let _lock = lock_database(&db)?;

    let incoming = PathBuf::from(format!("{}.restoring", db.display()));
    copy_synced(from, &incoming)?;

    // The database is its file plus its WAL and shared-memory files: move
    // all three aside together, so the kept copy is whole.
    let mut kept = None;
    if db.exists() {
        let aside = PathBuf::from(format!("{}.before-restore-{now_text}", db.display()));
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", db.display()));
            if file.exists() {
                let target = PathBuf::from(format!("{}{suffix}", aside.display()));
                std::fs::rename(&file, &target)
                    .map_err(|e| format!("cannot move {} aside to {}: {e}", file.display(), target.display()))?;
            }
        }
        kept = Some(aside);
    }
    std::fs::rename(&incoming, &db).map_err(|e| format!("cannot move the restored copy into place: {e}"))?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(kept)
}

fn copy_synced(from: &Path, to: &Path) -> Result<(), String> {
    let copied = std::fs::copy(from, to).and_then(|_| File::open(to)?.sync_all());
    copied.map_err(|e| {
        let _ = std::fs::remove_file(to);
        format!("cannot copy {} to {}: {e}", from.display(), to.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sqlite_files_have_a_path() {
        assert_eq!(sqlite_file("sqlite:/data/booboo.db"), Some(PathBuf::from("/data/booboo.db")));
        assert_eq!(sqlite_file("postgres://db/booboo"), None);
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }

    #[test]
    fn a_second_lock_on_one_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("booboo.db");
        let first = lock_database(&db).unwrap();
        let second = lock_database(&db);
        assert!(second.is_err_and(|e| e.contains("stop it first")));
        drop(first);
        assert!(lock_database(&db).is_ok());
    }
}

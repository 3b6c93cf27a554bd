//! The schema migrations, embedded in the binary. Each backend has its own
//! folder with the same file names; files are append-only, and a database
//! that knows a migration this binary does not is refused rather than used.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(Migration { name: $name, sql: include_str!(concat!("../../migrations/", $dir, "/", $name)) }),*]
    };
}

const SQLITE: &[Migration] = migrations!(
    "sqlite": "0001_initial.sql",
    "0002_dashboard.sql",
    "0003_project_facets.sql",
    "0004_accounts.sql",
    "0007_alerts.sql",
    "0009_ignore_conditions.sql",
    "0010_limits_and_ownership.sql",
    "0011_retention.sql",
    "0012_quota_windows.sql",
    "0013_issue_merges.sql",
    "0014_issue_search.sql",
    "0015_resolve_in_release.sql",
    "0016_issue_activity.sql",
    "0017_event_filters.sql",
    "0018_compressed_payloads.sql",
    "0019_payload_dictionaries.sql",
    "0020_tag_hashes.sql",
    "0021_environment_users.sql",
);
const POSTGRES: &[Migration] = migrations!(
    "postgres": "0001_initial.sql",
    "0002_dashboard.sql",
    "0003_project_facets.sql",
    "0004_accounts.sql",
    "0007_alerts.sql",
    "0009_ignore_conditions.sql",
    "0010_limits_and_ownership.sql",
    "0011_retention.sql",
    "0012_quota_windows.sql",
    "0013_issue_merges.sql",
    "0014_issue_search.sql",
    "0015_resolve_in_release.sql",
    "0016_issue_activity.sql",
    "0017_event_filters.sql",
    "0018_compressed_payloads.sql",
    "0019_payload_dictionaries.sql",
    "0020_tag_hashes.sql",
    "0021_environment_users.sql",
);

pub fn for_backend(backend: Backend) -> &'static [Migration] {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}

pub fn migration_names(backend: Backend) -> Vec<&'static str> {
    for_backend(backend).iter().map(|m| m.name).collect()
}

/// Which of `known` still need applying, given what the database has applied.
pub fn pending<'a>(backend: Backend, applied: &[String]) -> Result<Vec<&'a Migration>, String>
where
    'static: 'a,
{
    let known = for_backend(backend);
    if let Some(unknown) = applied.iter().find(|a| !known.iter().any(|m| m.name == a.as_str())) {
        return Err(format!(
            "the database has migration {unknown}, which this booboo does not know: it was upgraded by a newer booboo; run that version"
        ));
    }
    Ok(known.iter().filter(|m| !applied.iter().any(|a| a == m.name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files_in(dir: &str) -> Vec<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn both_backends_have_the_same_migration_files_and_embed_all_of_them() {
        let sqlite = files_in("sqlite");
        assert_eq!(sqlite, files_in("postgres"));
        assert_eq!(sqlite, migration_names(Backend::Sqlite));
        assert_eq!(sqlite, migration_names(Backend::Postgres));
    }

    #[test]
    fn a_database_from_a_newer_booboo_is_refused() {
        let err = pending(Backend::Sqlite, &["9999_future.sql".to_string()]).err().unwrap();
        assert!(err.contains("newer booboo"));
        assert_eq!(pending(Backend::Sqlite, &[]).unwrap().len(), SQLITE.len());
    }
}

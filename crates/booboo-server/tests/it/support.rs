//! Shared set-up: real stores on temporary databases, and events built from
//! protocol JSON through the real parser.

use booboo_core::booboo_payload::{self, Payload};
use booboo_server::store::{self, NewEvent, Store, Viewer};
use serde_json::{json, Value};
use std::sync::Arc;

pub const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// A SQLite store in a temporary directory that lives as long as the store.
pub async fn sqlite_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("booboo.db").display());
    (store::open(&url).await.unwrap(), dir)
}

/// A protocol event body with one in-app frame; `overrides` are merged in.
pub fn body(function: &str, overrides: Value) -> Value {
    let frames = json!([{
        "filename": "/srv/app/views.py", "function": function, "lineno": 10,
        "context_line": format!("{function}_fails()"), "pre_context": [], "post_context": [],
        "vars": {}, "in_app": true
    }]);
    let mut body = json!({
        "message": "it broke", "exception_type": "RuntimeError", "level": "error",
        "stacktrace": frames, "exceptions": [], "context": {}, "tags": {"runtime": "python"},
        "environment": "production", "release": "1.0"
    });
    for (k, v) in overrides.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    body
}

pub fn new_event(project_id: i64, at: i64, body: &Value) -> NewEvent {
    let when = booboo_core::timestamp::from_unix_millis(at);
    let id = format!("{:032x}", rand_u128());
    let Payload::Event(event) = booboo_payload::parse(&serde_json::to_vec(body).unwrap(), when, &id).unwrap() else {
        panic!("not an event")
    };
    NewEvent::new(&Default::default(), project_id, at, at, booboo_core::process(*event))
}

pub fn rand_u128() -> u128 {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).unwrap();
    u128::from_le_bytes(bytes)
}

pub const ADMIN: Viewer = Viewer { user_id: 0, is_admin: true };

pub mod postgres {
    //! A PostgreSQL store in a schema of its own, so tests run in parallel and
    //! leave nothing behind.

    use booboo_server::store::{self, Store};
    use sqlx::Connection;
    use std::sync::Arc;

    pub struct TestDatabase {
        pub store: Arc<dyn Store>,
        admin_url: String,
        schema: String,
        /// A database of its own (see [`TestDatabase::create_alone`]).
        database: Option<String>,
    }

    impl TestDatabase {
        /// `None` when BOOBOO_TEST_DATABASE_URL is unset; a panic when it is
        /// set but the database cannot be used, so CI fails rather than skips.
        pub async fn create() -> Option<TestDatabase> {
            let admin_url = std::env::var("BOOBOO_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
            let schema = format!("booboo_test_{:016x}", super::rand_u128() as u64);
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("BOOBOO_TEST_DATABASE_URL is set but unusable: {e}"));
            sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.unwrap();
            let separator = if admin_url.contains('?') { '&' } else { '?' };
            let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
            let store = store::open(&url).await.unwrap_or_else(|e| panic!("opening the PostgreSQL store failed: {e}"));
            Some(TestDatabase { store, admin_url, schema, database: None })
        }

        /// Like [`TestDatabase::create`], in a database of its own: for a
        /// test that measures the whole database's size, which tests in
        /// other schemas of a shared one would grow under it.
        pub async fn create_alone() -> Option<TestDatabase> {
            let admin_url = std::env::var("BOOBOO_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
            let database = format!("booboo_test_{:016x}", super::rand_u128() as u64);
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("BOOBOO_TEST_DATABASE_URL is set but unusable: {e}"));
            sqlx::query(&format!("CREATE DATABASE {database}")).execute(&mut conn).await.unwrap();
            let mut url = url::Url::parse(&admin_url).expect("BOOBOO_TEST_DATABASE_URL is a URL");
            url.set_path(&database);
            let store =
                store::open(url.as_str()).await.unwrap_or_else(|e| panic!("opening the PostgreSQL store failed: {e}"));
            Some(TestDatabase { store, admin_url, schema: String::new(), database: Some(database) })
        }

        pub async fn drop(self) {
            drop(self.store);
            let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
            match &self.database {
                Some(database) => {
                    sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)")).execute(&mut conn).await.unwrap()
                }
                None => sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema)).execute(&mut conn).await.unwrap(),
            };
        }
    }
}

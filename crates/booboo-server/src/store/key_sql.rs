//! Deleting a project's key, written once for both backends (expanded in
//! `sqlite.rs` and `postgres.rs` like `alert_sql.rs`). Revoking keeps a key
//! listed as revoked; deleting removes it from the list too. Either way its
//! token is refused from the next request on, on every node: ingestion reads
//! keys from the database on every request.

/// Defines the key functions for one backend: `$conn` is its connection type.
macro_rules! key_queries {
    ($conn:ty) => {
        /// Deletes a key of a project; whether there was one.
        async fn delete_key_row(conn: &mut $conn, project_id: i64, key_id: i64) -> Result<bool, sqlx::Error> {
            let deleted = sqlx::query(&q("DELETE FROM project_keys WHERE id = ? AND project_id = ?"))
                .bind(key_id)
                .bind(project_id)
                .execute(conn)
                .await?
                .rows_affected();
            Ok(deleted > 0)
        }
    };
}

pub(super) use key_queries;

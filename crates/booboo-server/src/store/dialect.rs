//! What SQLite and PostgreSQL do differently, side by side: the one seam
//! between the SQL written once in the `*_sql.rs` modules and the two
//! databases. Everything else a query says is the same text on both.
//!
//! Placeholders are not a difference: shared queries number them as
//! PostgreSQL does (`$1`, `$2`, …), and sqlx binds SQLite's `$N` to the N-th
//! argument too. The older query macros write `?` and pass their text
//! through [`SqlDialect::placeholders`] (SQLite keeps its bare `?`, cheapest
//! for the multi-row statements of a batch). `TRUE` and `FALSE` are the same
//! on both (SQLite reads them as 1 and 0), and both have `RETURNING` and
//! `ON CONFLICT`. What differs is below.

use super::search_sql::{self, SearchDialect};
use std::borrow::Cow;

pub(super) struct SqlDialect {
    /// Whether `?` placeholders are numbered into `$1, $2, …` (PostgreSQL
    /// knows no bare `?`).
    pub numbers_placeholders: bool,
    /// Appended to a `SELECT` that reads rows the transaction will change:
    /// PostgreSQL locks them until the commit, so another node waits; SQLite
    /// needs nothing, as a write transaction (`BEGIN IMMEDIATE`) holds the
    /// database's one write lock from its start.
    pub for_update: &'static str,
    /// Appended to the claim of due alert deliveries: PostgreSQL's nodes
    /// claim side by side, skipping rows another node is claiming; SQLite
    /// has one writer, so nothing to skip.
    pub skip_locked: &'static str,
    /// The smaller and the larger of two values: SQLite's two-argument `MIN`
    /// and `MAX`; PostgreSQL's `LEAST` and `GREATEST`.
    pub least: &'static str,
    pub greatest: &'static str,
    /// Whether a batch's multi-row statements take one array per column
    /// (`UNNEST`, one prepared text whatever the batch's size: PostgreSQL)
    /// or a `VALUES` list (SQLite, in the process): `batch_rows.rs`.
    pub batch_arrays: bool,
    /// Whether text can hold U+0000: SQLite's can, PostgreSQL's cannot.
    pub text_holds_nul: bool,
    /// Run first in the transaction that creates the first administrator, so
    /// two browsers (or nodes) using the setup link at once cannot both see
    /// "no user yet": PostgreSQL takes a transaction-scoped advisory lock;
    /// SQLite's write lock already serialises them.
    pub lock_first_admin: &'static str,
    /// Whether one server runs on the database: true of SQLite (the `.lock`
    /// file of `serve`), so claims on alert deliveries left by a previous run
    /// can be released at start; on PostgreSQL other nodes may hold live
    /// claims, which end with their lease.
    pub one_server_per_database: bool,
    /// The issue search's differences: the full-text index and reading a
    /// field of an event's JSON (`search_sql.rs`).
    pub search: &'static SearchDialect,
}

pub(super) const SQLITE: SqlDialect = SqlDialect {
    numbers_placeholders: false,
    for_update: "",
    skip_locked: "",
    least: "MIN",
    greatest: "MAX",
    batch_arrays: false,
    text_holds_nul: true,
    lock_first_admin: "",
    one_server_per_database: true,
    search: &search_sql::SQLITE,
};

pub(super) const POSTGRES: SqlDialect = SqlDialect {
    numbers_placeholders: true,
    for_update: " FOR UPDATE",
    skip_locked: " FOR UPDATE SKIP LOCKED",
    least: "LEAST",
    greatest: "GREATEST",
    batch_arrays: true,
    text_holds_nul: false,
    // The key is 0x626f_6f62_6f61 ("booboa"), the one nodes always took.
    lock_first_admin: "SELECT pg_advisory_xact_lock(108230749613921)",
    one_server_per_database: false,
    search: &search_sql::POSTGRES,
};

impl SqlDialect {
    /// A query written with `?` placeholders, in this database's form.
    pub fn placeholders(&self, sql: &str) -> String {
        if !self.numbers_placeholders {
            return sql.to_string();
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Text from an event as it is bound: where text cannot hold U+0000, it
    /// is written as `\u0000`, the way the event's JSON payload writes it,
    /// rather than refused (and retried) for ever. Borrowed unless changed.
    pub fn text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.text_holds_nul || !text.contains('\0') {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(text.replace('\0', "\\u0000"))
        }
    }

    /// Whether a value looked up could be stored at all: a lookup of text
    /// with U+0000 on PostgreSQL would be refused, and finds nothing, as no
    /// stored slug, token or e-mail holds one.
    pub fn can_hold(&self, text: &str) -> bool {
        self.text_holds_nul || !text.contains('\0')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_numbers_placeholders_and_sqlite_keeps_them() {
        assert_eq!(POSTGRES.placeholders("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(SQLITE.placeholders("a = ? AND b = ?"), "a = ? AND b = ?");
    }

    #[test]
    fn only_postgres_rewrites_nul_in_text() {
        assert!(matches!(SQLITE.text("a\0b"), Cow::Borrowed("a\0b")));
        assert!(matches!(POSTGRES.text("plain"), Cow::Borrowed("plain")));
        assert_eq!(POSTGRES.text("a\0b"), "a\\u0000b");
        assert!(SQLITE.can_hold("a\0b") && !POSTGRES.can_hold("a\0b") && POSTGRES.can_hold("ab"));
    }

    #[test]
    fn the_first_admin_lock_keeps_its_key() {
        assert!(POSTGRES.lock_first_admin.contains(&0x626f_6f62_6f61_i64.to_string()));
    }
}

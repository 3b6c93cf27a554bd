//! A batch's rows for one multi-row statement, kept column by column, and
//! the one place the two databases take them differently.
//!
//! SQLite runs in the process: a statement costs no round trip, so rows go
//! in as a `VALUES` list of bound values. PostgreSQL takes one array per
//! column and `UNNEST`s them: the statement's text is then the same however
//! many rows the batch has, so it stays prepared on the connection and costs
//! one round trip; a `VALUES` list whose length changes with the batch is
//! parsed anew each time, which sqlx does in a round trip of its own before
//! the one that executes it.
//!
//! Both forms name their columns `column1`, `column2`, … (SQLite's and
//! PostgreSQL's names for a `VALUES` list's columns), so a statement reading
//! [`BatchRows::table`] is one text for both.

use std::borrow::Cow;

/// One column's values, one per row.
pub(super) enum Column<'a> {
    Int(Vec<i64>),
    Text(Vec<Cow<'a, str>>),
    OptionalText(Vec<Option<Cow<'a, str>>>),
    OptionalBytes(Vec<Option<&'a [u8]>>),
    Bool(Vec<bool>),
}

impl Column<'_> {
    fn len(&self) -> usize {
        match self {
            Column::Int(v) => v.len(),
            Column::Text(v) => v.len(),
            Column::OptionalText(v) => v.len(),
            Column::OptionalBytes(v) => v.len(),
            Column::Bool(v) => v.len(),
        }
    }

    /// PostgreSQL's array type for the column.
    fn array_type(&self) -> &'static str {
        match self {
            Column::Int(_) => "int8[]",
            Column::Text(_) | Column::OptionalText(_) => "text[]",
            Column::OptionalBytes(_) => "bytea[]",
            Column::Bool(_) => "bool[]",
        }
    }
}

/// Rows of equal columns for one statement.
pub(super) struct BatchRows<'a> {
    pub columns: Vec<Column<'a>>,
}

impl<'a> BatchRows<'a> {
    /// The rows of these columns, which have as many values each.
    pub fn of(columns: Vec<Column<'a>>) -> BatchRows<'a> {
        debug_assert!(columns.windows(2).all(|w| w[0].len() == w[1].len()), "columns of unequal length");
        BatchRows { columns }
    }

    fn len(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    /// The rows as an `INSERT`'s source: `VALUES (?, ?), …` or
    /// `SELECT * FROM UNNEST(…)`.
    pub fn insert_source(&self, unnest: bool) -> String {
        if unnest {
            format!("SELECT * FROM {}", self.unnest())
        } else {
            format!("VALUES {}", values(self.len(), self.columns.len()))
        }
    }

    fn unnest(&self) -> String {
        let arrays: Vec<String> = self.columns.iter().map(|c| format!("?::{}", c.array_type())).collect();
        format!("UNNEST({})", arrays.join(", "))
    }

    /// The rows as a table named `alias` for `FROM`, its columns `column1`,
    /// `column2`, …, with `?` placeholders.
    pub fn table(&self, unnest: bool, alias: &str) -> String {
        if unnest {
            let names: Vec<String> = (1..=self.columns.len()).map(|n| format!("column{n}")).collect();
            format!("{} AS {alias}({})", self.unnest(), names.join(", "))
        } else {
            format!("(VALUES {}) AS {alias}", values(self.len(), self.columns.len()))
        }
    }

    /// `IN (…)` for the values of a one-column batch: `IN (?, ?, …)` or
    /// `= ANY(?::text[])`.
    pub fn in_list(&self, unnest: bool) -> String {
        match (unnest, self.columns.first()) {
            (true, Some(column)) => format!("= ANY(?::{})", column.array_type()),
            _ => format!("IN ({})", vec!["?"; self.len()].join(", ")),
        }
    }
}

/// `(?, ?), (?, ?)`: the VALUES list of `rows` rows of `columns` values.
pub(super) fn values(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// Binds `rows` to a SQLite statement written with [`BatchRows::table`]
/// or [`BatchRows::in_list`]: row by row, value by value.
pub(super) fn bind_sqlite<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    rows: &'q BatchRows<'q>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for row in 0..rows.len() {
        for column in &rows.columns {
            query = match column {
                Column::Int(v) => query.bind(v[row]),
                Column::Text(v) => query.bind(v[row].as_ref()),
                Column::OptionalText(v) => query.bind(v[row].as_deref()),
                Column::OptionalBytes(v) => query.bind(v[row]),
                Column::Bool(v) => query.bind(v[row]),
            };
        }
    }
    query
}

/// Binds `rows` to a PostgreSQL statement: one array per column.
pub(super) fn bind_postgres<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    rows: &'q BatchRows<'q>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for column in &rows.columns {
        query = match column {
            Column::Int(v) => query.bind(v.as_slice()),
            Column::Text(v) => query.bind(v.as_slice()),
            Column::OptionalText(v) => query.bind(v.as_slice()),
            Column::OptionalBytes(v) => query.bind(v.as_slice()),
            Column::Bool(v) => query.bind(v.as_slice()),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_rows() -> BatchRows<'static> {
        BatchRows::of(vec![Column::Int(vec![1, 2]), Column::Text(vec!["a".into(), "b".into()])])
    }

    #[test]
    fn values_lists_one_group_per_row() {
        assert_eq!(values(2, 3), "(?, ?, ?), (?, ?, ?)");
    }

    #[test]
    fn sqlite_lists_each_row_postgresql_one_array_per_column() {
        assert_eq!(two_rows().insert_source(false), "VALUES (?, ?), (?, ?)");
        assert_eq!(two_rows().insert_source(true), "SELECT * FROM UNNEST(?::int8[], ?::text[])");
        assert_eq!(two_rows().table(false, "v"), "(VALUES (?, ?), (?, ?)) AS v");
        assert_eq!(two_rows().table(true, "v"), "UNNEST(?::int8[], ?::text[]) AS v(column1, column2)");
        let ids = BatchRows::of(vec![Column::Text(vec!["x".into(), "y".into(), "z".into()])]);
        assert_eq!(ids.in_list(false), "IN (?, ?, ?)");
        assert_eq!(ids.in_list(true), "= ANY(?::text[])");
    }
}

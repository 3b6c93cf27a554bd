//! The server's only clock. The core is given times; it never reads them.

pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

pub fn now_millis() -> i64 {
    booboo_core::timestamp::unix_millis(now())
}

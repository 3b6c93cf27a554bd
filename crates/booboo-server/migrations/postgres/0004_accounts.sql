-- Accounts and links: links expire, passwords are reset through one-time
-- links, and sign-in limits are counters a request reserves atomically.
-- Times are milliseconds since the Unix epoch.

-- A setup link works until the first administrator exists, or for 24 hours
-- after the start that printed it. Links from before this migration had no
-- expiry; they are treated as expired (the next start prints a new one).
ALTER TABLE setup_tokens ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;

-- One-time links that let the owner of an account choose its password
-- (`booboo user reset-link`). Used links are kept until they expire, so a
-- second use is told the link was used.
CREATE TABLE password_links (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX password_links_by_expiry ON password_links (expires_at);

-- Sign-in limits, one row per key (`address:IP` or `account:EMAIL`):
-- the password checks counted in the current window, and for a slowed
-- account the earliest time of its next check. A sign-in reserves its
-- check here before the password is verified, in one transaction that
-- holds the row, so parallel requests cannot all pass the limit.
DROP TABLE sign_in_failures;
CREATE TABLE sign_in_limits (
    key TEXT PRIMARY KEY,
    window_ends_at BIGINT NOT NULL,
    checks BIGINT NOT NULL,
    next_check_at BIGINT NOT NULL
);
CREATE INDEX sign_in_limits_by_window ON sign_in_limits (window_ends_at);

-- Expired sessions, links and invitations are deleted by the pruning task.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX invitations_by_expiry ON invitations (expires_at);

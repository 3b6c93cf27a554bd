-- Alerts (SQLite): rules, their channels, the per-(rule, issue) throttle and
-- the outbox of deliveries. Times are milliseconds since the Unix epoch.

-- A rule: a trigger, optional filters (JSON, validated by the binary), a
-- throttle, and one or more channels.
CREATE TABLE alert_rules (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    trigger_kind TEXT NOT NULL CHECK (trigger_kind IN ('new-issue', 'regression', 'unignored', 'frequency', 'users')),
    threshold INTEGER NOT NULL DEFAULT 0,
    window_ms INTEGER NOT NULL DEFAULT 0,
    filters TEXT NOT NULL DEFAULT '{}',
    throttle_ms INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX alert_rules_by_project ON alert_rules (project_id);

-- Where a rule sends: a Slack, Discord or generic webhook URL, or e-mail.
-- The last failure stays until a success clears it.
CREATE TABLE alert_channels (
    id INTEGER PRIMARY KEY,
    rule_id INTEGER NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('webhook', 'slack', 'discord', 'email')),
    target TEXT NOT NULL,
    secret TEXT,
    last_failure_at INTEGER,
    last_failure_status INTEGER,
    last_failure_detail TEXT
);
CREATE INDEX alert_channels_by_rule ON alert_channels (rule_id);

-- When a rule last fired for an issue: one issue's storm never silences
-- another issue's alert.
CREATE TABLE alert_throttle (
    rule_id INTEGER NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
    issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    last_fired_at INTEGER NOT NULL,
    PRIMARY KEY (rule_id, issue_id)
);

-- The outbox: one row per (alert, channel), written in the transaction that
-- stored the triggering event. The delivery worker claims due rows, sends,
-- and marks them sent, retried or failed. `webhook_id` is the same on every
-- attempt. A row keeps what it needs to be shown after its rule is deleted.
CREATE TABLE alert_deliveries (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    rule_id INTEGER REFERENCES alert_rules(id) ON DELETE SET NULL,
    channel_id INTEGER REFERENCES alert_channels(id) ON DELETE SET NULL,
    channel_kind TEXT NOT NULL,
    issue_id INTEGER REFERENCES issues(id) ON DELETE CASCADE,
    event_id TEXT,
    kind TEXT NOT NULL,
    webhook_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    claimed_by TEXT,
    claimed_until INTEGER,
    sent_at INTEGER,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_attempt_at);
CREATE INDEX alert_deliveries_by_project ON alert_deliveries (project_id, id);
CREATE INDEX alert_deliveries_by_issue ON alert_deliveries (issue_id, id);

-- E-mail alerts. Members who do not want a project's alerts by e-mail.
CREATE TABLE alert_email_optouts (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, project_id)
);

-- The per-recipient cap: e-mails counted in the current window (an hour
-- from the first), so one storm cannot flood an inbox.
CREATE TABLE alert_email_budget (
    address TEXT PRIMARY KEY,
    window_ends_at INTEGER NOT NULL,
    sent INTEGER NOT NULL
);

-- Alerts held back by the cap, sent as one digest once the window ends.
CREATE TABLE alert_email_held (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    held_at INTEGER NOT NULL,
    summary TEXT NOT NULL,
    url TEXT NOT NULL
);
CREATE INDEX alert_email_held_by_address ON alert_email_held (address, id);

-- booboo schema, version 1 (SQLite). Times are milliseconds since the Unix epoch.

CREATE TABLE organisations (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE memberships (
    org_id INTEGER NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('member', 'admin')),
    PRIMARY KEY (org_id, user_id)
);

CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    connected_at INTEGER,
    connected_sdk TEXT,
    last_event_at INTEGER,
    UNIQUE (org_id, slug)
);

CREATE TABLE project_keys (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    token TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE issues (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    title TEXT NOT NULL,
    culprit TEXT NOT NULL,
    level TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'unresolved' CHECK (status IN ('unresolved', 'resolved', 'ignored')),
    is_regression INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    event_count INTEGER NOT NULL DEFAULT 0,
    user_count INTEGER NOT NULL DEFAULT 0,
    first_release TEXT,
    UNIQUE (project_id, fingerprint)
);
CREATE INDEX issues_by_last_seen ON issues (project_id, status, last_seen);

-- issue_id is filled in the same transaction that inserts the row: the event
-- is inserted first so that a duplicate event_id never touches issue counts.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    issue_id INTEGER REFERENCES issues(id) ON DELETE CASCADE,
    received_at INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,
    environment TEXT NOT NULL,
    release TEXT NOT NULL,
    level TEXT NOT NULL,
    user_key TEXT,
    payload TEXT NOT NULL,
    UNIQUE (project_id, event_id)
);
CREATE INDEX events_by_issue ON events (issue_id, received_at);
CREATE INDEX events_by_event_id ON events (event_id);

CREATE TABLE issue_users (
    issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    user_key TEXT NOT NULL,
    PRIMARY KEY (issue_id, user_key)
);

CREATE TABLE issue_environments (
    issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    environment TEXT NOT NULL,
    event_count INTEGER NOT NULL,
    PRIMARY KEY (issue_id, environment)
);

CREATE TABLE issue_releases (
    issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    release TEXT NOT NULL,
    event_count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (issue_id, release)
);

CREATE TABLE issue_tags (
    issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    event_count INTEGER NOT NULL,
    PRIMARY KEY (issue_id, key, value)
);

-- Events per issue per hour (hour = milliseconds / 3600000), for charts.
CREATE TABLE issue_hourly (
    issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    hour INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    PRIMARY KEY (issue_id, hour)
);

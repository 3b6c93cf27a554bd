-- booboo schema, version 1 (PostgreSQL). Times are milliseconds since the Unix epoch.

CREATE TABLE organisations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id BIGINT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('member', 'admin')),
    PRIMARY KEY (org_id, user_id)
);

CREATE TABLE projects (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    connected_at BIGINT,
    connected_sdk TEXT,
    last_event_at BIGINT,
    UNIQUE (org_id, slug)
);

CREATE TABLE project_keys (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    token TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE api_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE issues (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    title TEXT NOT NULL,
    culprit TEXT NOT NULL,
    level TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'unresolved' CHECK (status IN ('unresolved', 'resolved', 'ignored')),
    is_regression BOOLEAN NOT NULL DEFAULT FALSE,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    event_count BIGINT NOT NULL DEFAULT 0,
    user_count BIGINT NOT NULL DEFAULT 0,
    first_release TEXT,
    UNIQUE (project_id, fingerprint)
);
CREATE INDEX issues_by_last_seen ON issues (project_id, status, last_seen);

-- issue_id is filled in the same transaction that inserts the row: the event
-- is inserted first so that a duplicate event_id never touches issue counts.
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    issue_id BIGINT REFERENCES issues(id) ON DELETE CASCADE,
    received_at BIGINT NOT NULL,
    occurred_at BIGINT NOT NULL,
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
    issue_id BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    user_key TEXT NOT NULL,
    PRIMARY KEY (issue_id, user_key)
);

CREATE TABLE issue_environments (
    issue_id BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    environment TEXT NOT NULL,
    event_count BIGINT NOT NULL,
    PRIMARY KEY (issue_id, environment)
);

CREATE TABLE issue_releases (
    issue_id BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    release TEXT NOT NULL,
    event_count BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    PRIMARY KEY (issue_id, release)
);

CREATE TABLE issue_tags (
    issue_id BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    event_count BIGINT NOT NULL,
    PRIMARY KEY (issue_id, key, value)
);

-- Events per issue per hour (hour = milliseconds / 3600000), for charts.
CREATE TABLE issue_hourly (
    issue_id BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    hour BIGINT NOT NULL,
    event_count BIGINT NOT NULL,
    PRIMARY KEY (issue_id, hour)
);

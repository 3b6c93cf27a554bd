-- Quotas that keep counting: per project and quota (and for the
-- installation's limit on all projects together, the second table), the fixed window now
-- running and the payloads stored in it. The row is read and locked inside
-- the batch's transaction, so every node shares one exact count. kind is
-- 'rate_limit' or 'spike_guard'; cap is the most the window may hold (the
-- spike guard's is computed once per hour from issue_hourly).
CREATE TABLE quota_windows (
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    stored BIGINT NOT NULL,
    cap BIGINT NOT NULL,
    PRIMARY KEY (project_id, kind)
);

-- The installation's rate limit counts all projects together: one window.
CREATE TABLE installation_quota_windows (
    kind TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    stored BIGINT NOT NULL,
    cap BIGINT NOT NULL
);

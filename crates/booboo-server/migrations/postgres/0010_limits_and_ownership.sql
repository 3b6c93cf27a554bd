-- Per-project limits (NULL = the installation's default) and the columns
-- several features share, added together so they land as one migration.
--
-- Retention: at most max_events stored payloads, none older than
-- retention_days. Quota: at most rate_limit_count events stored per
-- rate_limit_seconds; spike_guard caps a project at a multiple of its own
-- recent hourly rate. Over a quota events are still counted, only their
-- payload is not stored.
ALTER TABLE projects ADD COLUMN max_events BIGINT;
ALTER TABLE projects ADD COLUMN retention_days BIGINT;
ALTER TABLE projects ADD COLUMN rate_limit_count BIGINT;
ALTER TABLE projects ADD COLUMN rate_limit_seconds BIGINT;
ALTER TABLE projects ADD COLUMN spike_guard BOOLEAN NOT NULL DEFAULT FALSE;

-- Counted but not stored, by reason. Stored payloads of an issue are
-- event_count - not_stored_rate_limit - not_stored_retention.
ALTER TABLE issues ADD COLUMN not_stored_rate_limit BIGINT NOT NULL DEFAULT 0;
ALTER TABLE issues ADD COLUMN not_stored_retention BIGINT NOT NULL DEFAULT 0;

-- The member an issue is assigned to (NULL: unassigned).
ALTER TABLE issues ADD COLUMN assignee_id BIGINT REFERENCES users(id) ON DELETE SET NULL;

-- Retention (issue 12). `kept` marks the events eviction never takes: an
-- issue's first event and the event of each regression, set when the event
-- is stored. `lightened` marks an event whose payload was cut down to the
-- lighter tier (no locals, request or breadcrumbs), so it is done once.
ALTER TABLE events ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN lightened INTEGER NOT NULL DEFAULT 0;

-- Events stored before this migration: each issue's first event is kept.
UPDATE events SET kept = 1 WHERE id IN (SELECT MIN(id) FROM events WHERE issue_id IS NOT NULL GROUP BY issue_id);

-- Age retention deletes a project's oldest events first; the lighter tier
-- looks for old events not yet lightened.
CREATE INDEX events_by_project_age ON events (project_id, received_at);
CREATE INDEX events_not_lightened ON events (received_at) WHERE NOT lightened;

-- One node runs the background retention pass at a time: it holds this
-- lease until `until` and renews it each pass; a node that dies lets it
-- expire. (Its deletes would be safe side by side, but two passes planned
-- from the same counts would evict twice as much.)
CREATE TABLE retention_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    until INTEGER NOT NULL
);
INSERT INTO retention_lease (id, holder, until) VALUES (1, '', 0);

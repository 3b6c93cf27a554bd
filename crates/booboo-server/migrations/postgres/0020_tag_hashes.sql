-- A tag term combined with another event term (release:1.4 region:eu) had
-- to read every event the other term left, to look at its tags. Each event
-- now keeps an 8-byte hash of every tag (key and value) in `tag_hashes`,
-- and the filter index carries it, so such searches are answered from the
-- index alone (store/search_sql.rs). Rows stored before, and events with
-- more tags than are hashed, keep it NULL and are read as before.
ALTER TABLE events ADD COLUMN tag_hashes BYTEA;
DROP INDEX events_by_project_filters;
CREATE INDEX events_by_project_filters ON events (project_id, environment, release, issue_id, received_at, user_key, tag_hashes);

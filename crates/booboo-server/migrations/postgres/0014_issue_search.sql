-- Issue search (PostgreSQL). Free text is matched through a GIN index over
-- a tsvector of the issues' title (the exception type and value, or the
-- message) and culprit. Text is cut into runs of letters and digits first,
-- the way SQLite's FTS5 cuts it, so `app.views` is two words on both
-- backends. The query must use this exact expression to use the index.
-- (tsvector needs no extension, so this works for a non-superuser.)
CREATE INDEX issues_search ON issues USING GIN (
    to_tsvector('simple'::regconfig, regexp_replace(title || ' ' || culprit, '[^[:alnum:]]+', ' ', 'g'))
);

-- The list's other orders, so a page of a large project reads an index
-- rather than sorting every issue.
CREATE INDEX issues_by_first_seen ON issues (project_id, status, first_seen);
CREATE INDEX issues_by_event_count ON issues (project_id, status, event_count);
CREATE INDEX issues_by_user_count ON issues (project_id, status, user_count);

-- Issue search (SQLite). Free text is matched through an FTS5 index over the
-- issues' title (the exception type and value, or the message) and culprit,
-- kept in step by triggers: an ingest that does not change either column
-- does not touch the index.
CREATE VIRTUAL TABLE issues_fts USING fts5 (
    title, culprit, content = 'issues', content_rowid = 'id', tokenize = 'unicode61'
);
INSERT INTO issues_fts (issues_fts) VALUES ('rebuild');

CREATE TRIGGER issues_fts_insert AFTER INSERT ON issues BEGIN
    INSERT INTO issues_fts (rowid, title, culprit) VALUES (new.id, new.title, new.culprit);
END;
CREATE TRIGGER issues_fts_delete AFTER DELETE ON issues BEGIN
    INSERT INTO issues_fts (issues_fts, rowid, title, culprit) VALUES ('delete', old.id, old.title, old.culprit);
END;
CREATE TRIGGER issues_fts_update AFTER UPDATE OF title, culprit ON issues
WHEN old.title IS NOT new.title OR old.culprit IS NOT new.culprit BEGIN
    INSERT INTO issues_fts (issues_fts, rowid, title, culprit) VALUES ('delete', old.id, old.title, old.culprit);
    INSERT INTO issues_fts (rowid, title, culprit) VALUES (new.id, new.title, new.culprit);
END;

-- The list's other orders, so a page of a large project reads an index
-- rather than sorting every issue.
CREATE INDEX issues_by_first_seen ON issues (project_id, status, first_seen);
CREATE INDEX issues_by_event_count ON issues (project_id, status, event_count);
CREATE INDEX issues_by_user_count ON issues (project_id, status, user_count);

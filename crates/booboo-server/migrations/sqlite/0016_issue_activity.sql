-- An issue's history: every change to it, newest read first. `actor_id` is
-- the user who made the change; NULL means booboo itself (a regression, an
-- ignore that ended, an alert sent). `detail` is a JSON object whose fields
-- depend on `kind`; a comment's text is the `text` field of its detail.
CREATE TABLE issue_activity (
    id INTEGER PRIMARY KEY,
    issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    actor_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
);
CREATE INDEX issue_activity_by_issue ON issue_activity (issue_id, id);

-- Merged issues (PostgreSQL). When issues are merged into one, each merged
-- issue's fingerprint is kept here, pointing at the issue it now belongs to,
-- so that later events of that fingerprint are counted on the merged issue.
-- `merged_issue_id` is the id the merged issue had, so links to it still lead
-- somewhere. Deleting the issue a fingerprint points at deletes the alias:
-- later events of it then start a new issue, as after any deletion.
CREATE TABLE issue_aliases (
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    issue_id BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    merged_issue_id BIGINT NOT NULL,
    merged_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, fingerprint)
);
CREATE INDEX issue_aliases_by_issue ON issue_aliases (issue_id);
CREATE INDEX issue_aliases_by_merged_issue ON issue_aliases (merged_issue_id);

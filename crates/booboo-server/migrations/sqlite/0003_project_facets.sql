-- The environments and releases each project has seen, for the issue list's
-- filter selectors. Reading them from the per-issue tables took milliseconds
-- per page for a project with thousands of issues; these stay small.
CREATE TABLE project_environments (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    environment TEXT NOT NULL,
    PRIMARY KEY (project_id, environment)
);

CREATE TABLE project_releases (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    release TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (project_id, release)
);

INSERT INTO project_environments (project_id, environment)
SELECT DISTINCT i.project_id, ie.environment FROM issue_environments ie JOIN issues i ON i.id = ie.issue_id;

INSERT INTO project_releases (project_id, release, first_seen)
SELECT i.project_id, ir.release, MIN(ir.first_seen) FROM issue_releases ir JOIN issues i ON i.id = ir.issue_id
GROUP BY i.project_id, ir.release;

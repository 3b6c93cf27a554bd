-- Sorting a search on one environment by users (env:staging, sort=users)
-- counted the distinct users of every matching event at search time: about
-- 330,000 index entries for a third of a million-event project. Each issue
-- now keeps its distinct users per environment, written with the batch's
-- counters (store/batch_counters.rs), and `issue_environments.user_count`
-- is how many there are, so that search reads one counter row per issue
-- (store/search_sql.rs). Like the other counters they count every event
-- received and survive retention; events already pruned when this
-- migration runs are not counted.
ALTER TABLE issue_environments ADD COLUMN user_count INTEGER NOT NULL DEFAULT 0;
CREATE TABLE issue_environment_users (
    issue_id INTEGER NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    environment TEXT NOT NULL,
    user_key TEXT NOT NULL,
    PRIMARY KEY (issue_id, environment, user_key)
) WITHOUT ROWID;
INSERT INTO issue_environment_users (issue_id, environment, user_key)
SELECT DISTINCT issue_id, environment, user_key FROM events
WHERE issue_id IS NOT NULL AND user_key IS NOT NULL;
UPDATE issue_environments SET user_count = (
    SELECT COUNT(*) FROM issue_environment_users u
    WHERE u.issue_id = issue_environments.issue_id AND u.environment = issue_environments.environment
);

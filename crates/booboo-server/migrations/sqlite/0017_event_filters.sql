-- Searches whose terms filter events (an environment with a release, say)
-- count each issue's matching events. This index answers them from the
-- index alone, without reading the events and their payloads, and hands
-- them over grouped by issue.
CREATE INDEX events_by_project_filters ON events (project_id, environment, release, issue_id, received_at, user_key);

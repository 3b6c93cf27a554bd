-- Ignore conditions: an ignored issue stays ignored forever (all NULL),
-- until a time, until its event count reaches a target, or until its
-- distinct-user count reaches one. When the condition ends the issue is
-- unresolved again and the project's "unignored" rules fire.
ALTER TABLE issues ADD COLUMN ignore_until INTEGER;
ALTER TABLE issues ADD COLUMN ignore_until_count INTEGER;
ALTER TABLE issues ADD COLUMN ignore_until_users INTEGER;

-- The sweep that ends timed ignores reads only issues that have one.
CREATE INDEX issues_ignore_until ON issues (ignore_until) WHERE ignore_until IS NOT NULL;

-- E-mail alerts: one delivery per recipient (written when the alert is), so a
-- recipient who refuses does not make the others get it twice. NULL for
-- other channels (and e-mail deliveries written before this migration).
ALTER TABLE alert_deliveries ADD COLUMN recipient TEXT;

-- Resolving in a release: how a resolved issue was resolved with respect to
-- releases (all NULL: resolved now, or not resolved). resolved_kind is
-- 'release' (events from resolved_release or later regress),
-- 'current_release' (the same, with the project's latest release when it was
-- resolved) or 'next_release' (only events from releases after
-- resolved_release, the latest then, regress; NULL release: the project had
-- none). resolved_semver says the project's releases all parsed as semantic
-- versions when it was resolved, so they are ordered so; else by first seen.
ALTER TABLE issues ADD COLUMN resolved_kind TEXT;
ALTER TABLE issues ADD COLUMN resolved_release TEXT;
ALTER TABLE issues ADD COLUMN resolved_semver INTEGER NOT NULL DEFAULT 0;

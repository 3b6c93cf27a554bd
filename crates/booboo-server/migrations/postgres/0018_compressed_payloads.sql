-- Event payloads are stored zstd-compressed in `body`, with `payload` left
-- empty (store/stored_payload.rs); rows stored before keep their JSON in
-- `payload` and no `body`. What searches read from an event besides its
-- columns, its tags and its user's e-mail, gets columns of its own, since
-- SQL cannot look into a compressed body. They come before `body` in the
-- row (on SQLite, so that reading them does not walk a large body's overflow pages).
ALTER TABLE events ADD COLUMN tags TEXT;
ALTER TABLE events ADD COLUMN user_email TEXT;
ALTER TABLE events ADD COLUMN body BYTEA;

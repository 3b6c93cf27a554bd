-- zstd dictionaries trained on the installation's own events: bodies
-- compressed with one are several times smaller (store/stored_payload.rs).
-- The id is zstd's own id of the dictionary, which each compressed frame
-- records; a dictionary is never changed or removed while a body may
-- need it.
CREATE TABLE payload_dictionaries (
    id BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    dictionary BYTEA NOT NULL
);

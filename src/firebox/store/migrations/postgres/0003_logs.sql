-- Log groups, streams and events. Messages are bytes: a function may print NUL, which
-- PostgreSQL's text type cannot hold.
CREATE TABLE firebox_log_groups (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT COLLATE "C" NOT NULL UNIQUE,
    created_ms     BIGINT NOT NULL,
    retention_days INTEGER,
    tags           TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE firebox_log_streams (
    id             BIGSERIAL PRIMARY KEY,
    group_id       BIGINT NOT NULL,
    name           TEXT COLLATE "C" NOT NULL,
    created_ms     BIGINT NOT NULL,
    first_ts       BIGINT,
    last_ts        BIGINT,
    last_ingest_ms BIGINT,
    stored_bytes   BIGINT NOT NULL DEFAULT 0,
    UNIQUE (group_id, name)
);
CREATE TABLE firebox_log_events (
    id        BIGSERIAL PRIMARY KEY,
    group_id  BIGINT NOT NULL,
    stream_id BIGINT NOT NULL,
    ts        BIGINT NOT NULL,
    ingest_ms BIGINT NOT NULL,
    message   BYTEA NOT NULL
);
CREATE INDEX firebox_log_events_by_stream ON firebox_log_events (stream_id, ts, id);
CREATE INDEX firebox_log_events_by_group ON firebox_log_events (group_id, ts, id);

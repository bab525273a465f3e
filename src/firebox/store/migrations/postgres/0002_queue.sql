-- The async event queue and its dead letters. IF NOT EXISTS: a database the queue used
-- before versioned migrations already has them, with this very shape.
CREATE TABLE IF NOT EXISTS firebox_events (
    seq          BIGSERIAL PRIMARY KEY,
    request_id   TEXT NOT NULL,
    function     TEXT NOT NULL,
    qualifier    TEXT,
    payload      BYTEA NOT NULL,
    enqueued_at  DOUBLE PRECISION NOT NULL,
    due_at       DOUBLE PRECISION NOT NULL,
    owner        TEXT,
    invoke_count INTEGER NOT NULL DEFAULT 0,
    retries      INTEGER NOT NULL DEFAULT 0,
    throttles    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS firebox_events_due ON firebox_events(due_at);
CREATE INDEX IF NOT EXISTS firebox_events_function ON firebox_events(function);
CREATE TABLE IF NOT EXISTS firebox_dead_letters (
    seq          BIGSERIAL PRIMARY KEY,
    request_id   TEXT NOT NULL,
    function     TEXT NOT NULL,
    qualifier    TEXT,
    payload      BYTEA NOT NULL,
    enqueued_at  DOUBLE PRECISION NOT NULL,
    failed_at    DOUBLE PRECISION NOT NULL,
    reason       TEXT NOT NULL,
    invoke_count INTEGER NOT NULL,
    target       TEXT NOT NULL,
    record       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS firebox_dead_letters_function ON firebox_dead_letters(function);

-- IF NOT EXISTS: a data dir from before versioned migrations has these tables already.
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id   TEXT NOT NULL,
    function     TEXT NOT NULL,
    qualifier    TEXT,
    payload      BLOB NOT NULL,
    enqueued_at  REAL NOT NULL,
    due_at       REAL NOT NULL,
    leased       INTEGER NOT NULL DEFAULT 0,
    invoke_count INTEGER NOT NULL DEFAULT 0,
    retries      INTEGER NOT NULL DEFAULT 0,
    throttles    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_due ON events(due_at);
CREATE INDEX IF NOT EXISTS events_function ON events(function);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id   TEXT NOT NULL,
    function     TEXT NOT NULL,
    qualifier    TEXT,
    payload      BLOB NOT NULL,
    enqueued_at  REAL NOT NULL,
    failed_at    REAL NOT NULL,
    reason       TEXT NOT NULL,
    invoke_count INTEGER NOT NULL,
    target       TEXT NOT NULL,
    record       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_function ON dead_letters(function);

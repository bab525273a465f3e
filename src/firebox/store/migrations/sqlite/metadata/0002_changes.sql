-- The change feed between processes sharing this file (--processes): every write of a
-- shared store also records what it changed, and each process reads what the others wrote.
CREATE TABLE IF NOT EXISTS changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind   TEXT NOT NULL,
    key    TEXT NOT NULL,
    prefix INTEGER NOT NULL,
    at     REAL NOT NULL
);

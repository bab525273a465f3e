CREATE TABLE workers (
    node_id      TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    capacity     INTEGER NOT NULL,
    free         INTEGER NOT NULL DEFAULT 0,
    state        TEXT NOT NULL,
    heartbeat_at REAL NOT NULL
);
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at REAL NOT NULL,
    token      INTEGER NOT NULL
);
CREATE TABLE reservations (
    id         TEXT PRIMARY KEY,
    pool       TEXT NOT NULL,
    function   TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX reservations_pool ON reservations (pool, expires_at);
CREATE INDEX reservations_holder ON reservations (holder);

-- What the nodes of a fleet coordinate through. Times are seconds since the epoch on the
-- database's clock, the one clock every node shares.
CREATE TABLE firebox_workers (
    node_id      TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    capacity     INTEGER NOT NULL,
    free         INTEGER NOT NULL DEFAULT 0,
    state        TEXT NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE firebox_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    token      BIGINT NOT NULL
);
CREATE TABLE firebox_reservations (
    id         TEXT PRIMARY KEY,
    pool       TEXT NOT NULL,
    function   TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX firebox_reservations_pool ON firebox_reservations (pool, expires_at);
CREATE INDEX firebox_reservations_holder ON firebox_reservations (holder);

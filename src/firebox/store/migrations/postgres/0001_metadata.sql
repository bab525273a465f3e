-- Control-plane documents by (kind, key). Keys compare byte-wise (COLLATE "C"), the
-- order SQLite gives them, so that listings page identically on both backends.
CREATE TABLE firebox_docs (
    kind TEXT COLLATE "C" NOT NULL,
    key  TEXT COLLATE "C" NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE firebox_counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

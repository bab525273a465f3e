-- IF NOT EXISTS: a data dir from before versioned migrations has this table already.
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL,
    function TEXT NOT NULL,
    requests INTEGER NOT NULL,
    billed_ms INTEGER NOT NULL,
    mb_ms INTEGER NOT NULL,
    PRIMARY KEY (day, function)
);

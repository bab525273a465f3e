-- Metered usage per UTC day and function; every node adds its own totals.
CREATE TABLE firebox_usage (
    day       TEXT NOT NULL,
    function  TEXT NOT NULL,
    requests  BIGINT NOT NULL,
    billed_ms BIGINT NOT NULL,
    mb_ms     BIGINT NOT NULL,
    PRIMARY KEY (day, function)
);

-- Which process holds an event's lease (processes sharing the file: --processes), so
-- that a restarting process releases its own leases and nobody else's.
ALTER TABLE events ADD COLUMN owner TEXT NOT NULL DEFAULT '';

-- Where an imported event sat in the log it was copied from: the JetStream stream sequence the
-- archiver read it at. Reads of the archive in the source's order (`SqlLog::read_imported`)
-- continue a JetStream read below the stream's first sequence with the same positions. NULL
-- for events appended here, and for events imported before this column existed.
ALTER TABLE events ADD COLUMN source_position INTEGER CHECK (source_position >= 1);

-- One event per source position. Partial: a log that imports nothing keeps an empty index
-- (a range condition on the column implies IS NOT NULL, so reads use it).
CREATE UNIQUE INDEX events_source_position ON events (source_position)
    WHERE source_position IS NOT NULL;

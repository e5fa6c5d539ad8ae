-- Generations of source positions. A source position is a JetStream stream sequence, and a
-- JetStream stream deleted and created again numbers its events from 1 again, so the same
-- position would name two events. The archive then starts a new generation
-- (`SqlLog::retire_source_positions`): a source position is unique within its generation,
-- reads by source position (`SqlLog::read_imported`) see the current generation only, and the
-- events imported under an earlier one keep their positions as the order of the stream they
-- came from. The current generation is the highest.
CREATE TABLE source_generations (
    generation BIGINT      PRIMARY KEY CHECK (generation >= 0),
    started_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO source_generations (generation) VALUES (0);

ALTER TABLE events ADD COLUMN source_generation BIGINT NOT NULL DEFAULT 0 CHECK (source_generation >= 0);

-- One event per source position of a generation.
DROP INDEX events_source_position;
CREATE UNIQUE INDEX events_source_position ON events (source_generation, source_position)
    WHERE source_position IS NOT NULL;

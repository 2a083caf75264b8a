-- threads.version counted writes for optimistic checks; every write of a thread is fenced by
-- its lease instead (0002, 0004), and nothing has read or bumped the column since.
ALTER TABLE threads DROP COLUMN IF EXISTS version;

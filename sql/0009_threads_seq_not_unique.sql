-- threads.seq orders threads of equal created_at (threads_by_user_created); nothing looks a
-- thread up by it, and a bigserial is unique by construction. Its unique index was one more
-- B-tree insert (and WAL record) for every new thread.
ALTER TABLE threads DROP CONSTRAINT IF EXISTS threads_seq_key;

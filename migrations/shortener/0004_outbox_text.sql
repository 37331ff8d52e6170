-- The outbox keeps each message as the text it is published as: producers encode it,
-- the relay sends it as read, and nobody queries inside it. As jsonb every row was
-- parsed on insert and printed again on read, and a large one (a batch message of
-- url.accessed events, about 300 kB) was compressed with pglz; that was most of the
-- database's work per visit. lz4 compresses such rows several times faster.
alter table outbox
    alter column payload type text using payload::text,
    alter column payload set compression lz4;

-- Transactional outbox: events are written here in the same transaction as the change
-- they describe, and the relay (common::events::outbox) publishes and then deletes them.
create table outbox (
    id          uuid primary key,
    routing_key text        not null,
    payload     jsonb       not null,
    request_id  text,
    created_at  timestamptz not null default now(),
    attempts    integer     not null default 0,
    last_error  text
);

create index outbox_created_at_idx on outbox (created_at, id);

-- Wakes the relay as soon as a transaction that wrote events commits.
create function outbox_notify() returns trigger
language plpgsql as $$
begin
    perform pg_notify('outbox', '');
    return null;
end;
$$;

create trigger outbox_notify
after insert on outbox
for each statement execute function outbox_notify();

-- The live stream's retained window (notification-service, issue #24): what the
-- tenant's stream (`GET /api/v1/stream`) sent, in order, so a client that comes back
-- with `Last-Event-ID` gets exactly what it missed from whichever instance it reaches.
-- Rows older than STREAM_RETENTION_SECS are pruned; an id no longer here means the
-- client is too far behind (a `reset` event). Appends are serialised per tenant (a
-- transaction-level advisory lock), so `seq` order is commit order.
create table stream_events (
    seq          bigint generated always as identity primary key,
    -- The event it comes from; with the receiver, one row per event and receiver, so a
    -- redelivered event adds nothing.
    event_id     uuid        not null,
    -- nil for a project's event (every reader of the project sees it); the receiver of
    -- a `notification.created`.
    recipient_id uuid        not null default '00000000-0000-0000-0000-000000000000',
    kind         text        not null,
    project_id   uuid        not null,
    task_id      uuid,
    -- The `data:` line as sent (JSON).
    data         text        not null,
    at           timestamptz not null default now(),
    unique (event_id, recipient_id)
);

create index stream_events_at_idx on stream_events (at);

-- Single-use tickets that open a stream from a browser (EventSource sends no headers):
-- kept hashed, bound to the member, their role and the token that asked (`issued_at`,
-- its `iat`, for revocations; `token_expires_at`, when the stream must end).
create table stream_tickets (
    hash             bytea       primary key,
    user_id          uuid        not null,
    role             text        not null,
    issued_at        bigint      not null,
    token_expires_at bigint      not null,
    expires_at       timestamptz not null
);

create index stream_tickets_expires_idx on stream_tickets (expires_at);

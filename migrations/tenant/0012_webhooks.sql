-- Outgoing webhooks (issue #25): the tenant's endpoints, each delivery (one event to one
-- endpoint, stored in the same transaction as the event's notifications, before its
-- first attempt), and each attempt's outcome. notification-service owns these tables.

create table webhook_endpoints (
    id                     uuid        primary key,
    url                    text        not null,
    -- Event types or patterns (`task.*`, `*`).
    events                 text[]      not null,
    description            text        not null default '',
    format                 text        not null check (format in ('standard', 'slack')),
    -- `whsec_<base64>`; during a rotation the previous secret also signs until
    -- `previous_secret_until`.
    secret                 text        not null,
    previous_secret        text,
    previous_secret_until  timestamptz,
    enabled                boolean     not null default true,
    -- Why it was turned off (`gone`: the receiver answered 410; `failing`: it failed for
    -- `WEBHOOK_DISABLE_AFTER_HOURS`; `manual`).
    disabled_reason        text,
    -- The first failure since the last success.
    failing_since          timestamptz,
    created_by             uuid        not null,
    created_at             timestamptz not null default now(),
    updated_at             timestamptz not null default now()
);

create table webhook_deliveries (
    -- Also the `webhook-id` (`msg_<id>`): the same on every attempt.
    id              uuid        primary key,
    endpoint_id     uuid        not null references webhook_endpoints (id) on delete cascade,
    -- The event it carries: a redelivered event adds no delivery.
    event_id        uuid        not null,
    event_type      text        not null,
    -- The exact body every attempt sends (what is signed).
    body            text        not null,
    -- The `webhook-timestamp` of the message.
    occurred_at     timestamptz not null,
    created_at      timestamptz not null default now(),
    status          text        not null default 'pending'
                                check (status in ('pending', 'succeeded', 'failed')),
    attempts        integer     not null default 0,
    -- When it is due (a claimed delivery's lease ends here too); null once settled.
    next_attempt_at timestamptz,
    unique (endpoint_id, event_id)
);

-- What is waiting, per endpoint, by when it is due (the dispatcher's claims).
create index webhook_deliveries_due_idx on webhook_deliveries (endpoint_id, next_attempt_at)
    where status = 'pending';
create index webhook_deliveries_endpoint_idx on webhook_deliveries (endpoint_id, id desc);

create table webhook_attempts (
    delivery_id   uuid        not null references webhook_deliveries (id) on delete cascade,
    attempt       integer     not null,
    at            timestamptz not null,
    -- None when no answer came (refused, timed out, connection failed).
    status_code   integer,
    duration_ms   integer     not null,
    -- The answer's first KiB.
    response      text        not null default '',
    error         text,
    primary key (delivery_id, attempt)
);

-- `webhook_disabled`: told to those who manage webhooks when an endpoint is turned off.
alter table notifications drop constraint notifications_kind_check;
alter table notifications add constraint notifications_kind_check check (kind in (
    'task_assigned', 'task_status_changed', 'comment_added', 'mentioned', 'invited',
    'webhook_disabled'));
alter table notification_preferences drop constraint notification_preferences_kind_check;
alter table notification_preferences add constraint notification_preferences_kind_check
    check (kind in (
        'task_assigned', 'task_status_changed', 'comment_added', 'mentioned', 'invited',
        'webhook_disabled'));

-- Answers of `POST /api/v1/links` kept under the caller's `Idempotency-Key`, so a retried
-- create answers the first answer again and creates nothing.
create table idempotency_keys (
    tenant_id   uuid        not null,
    user_id     uuid        not null,
    key         text        not null,
    status      integer     not null,
    body        jsonb       not null,
    created_at  timestamptz not null default now(),
    primary key (tenant_id, user_id, key)
);

-- Access tokens are self-contained for their 15 minutes; when a member is removed or
-- their role changes, the tokens issued before that moment must stop working at once.
-- The gateway polls this list (`GET /internal/revocations`) and refuses a token of
-- (tenant, user) issued before `revoked_before`. Rows older than a day are pruned.

create table access_revocations (
    seq            bigserial primary key,
    tenant_id      uuid        not null,
    user_id        uuid        not null,
    revoked_before timestamptz not null default now(),
    created_at     timestamptz not null default now()
);

create index access_revocations_created_idx on access_revocations (created_at);

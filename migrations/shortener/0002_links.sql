-- Share links: a short code that opens a read-only view of one task or project of a
-- tenant, optionally behind a password, until it expires or its visits are used up.
create table links (
    code              text        primary key,
    tenant_id         uuid        not null,
    -- Where the redirect goes: `https://<tenant_slug>.<domain>/shared/...` (from the
    -- creator's token; a slug never changes).
    tenant_slug       text        not null,
    created_by        uuid        not null,
    target_type       text        not null check (target_type in ('task', 'project')),
    target_id         uuid        not null,
    -- argon2id PHC string; null when the link is open to anyone who has it.
    password_hash     text,
    expires_at        timestamptz not null,
    max_visits        bigint      check (max_visits > 0),
    -- Successful redirects, written in batches: may trail the in-memory count briefly.
    visits            bigint      not null default 0,
    disabled          boolean     not null default false,
    -- Set when the one `url.expired` event of the link was recorded.
    expired_event_at  timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    constraint links_code_format check (code ~ '^[0-9A-Za-z]{8}$')
);

-- Listing a tenant's links (or one creator's), newest first, by keyset.
create index links_tenant_created_idx on links (tenant_id, created_at desc, code);
create index links_tenant_creator_idx on links (tenant_id, created_by, created_at desc, code);

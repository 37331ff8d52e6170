-- Users are global (one login per person); memberships give them a role per tenant.
create table users (
    id            uuid primary key,
    email         text        not null,
    name          text        not null,
    -- argon2id PHC string; never leaves this service.
    password_hash text        not null,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

create unique index users_email_key on users (lower(email));

create table memberships (
    tenant_id   uuid        not null,
    user_id     uuid        not null references users (id),
    tenant_slug text        not null,
    role        text        not null
        check (role in ('owner', 'admin', 'manager', 'member', 'viewer')),
    status      text        not null default 'active'
        check (status in ('active', 'removed')),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    primary key (tenant_id, user_id)
);

create index memberships_user_idx on memberships (user_id);

-- Refresh tokens, stored as SHA-256 hashes. Each use rotates the token within its
-- family; presenting a rotated token again revokes the whole family (RFC 9700).
create table refresh_tokens (
    id         uuid primary key,
    family_id  uuid        not null,
    user_id    uuid        not null references users (id),
    tenant_id  uuid        not null,
    token_hash bytea       not null,
    expires_at timestamptz not null,
    created_at timestamptz not null default now(),
    rotated_at timestamptz,
    revoked_at timestamptz,
    constraint refresh_tokens_hash_key unique (token_hash)
);

create index refresh_tokens_family_idx on refresh_tokens (family_id);

create table invites (
    id          uuid primary key,
    tenant_id   uuid        not null,
    tenant_slug text        not null,
    email       text        not null,
    role        text        not null
        check (role in ('admin', 'manager', 'member', 'viewer')),
    token_hash  bytea       not null,
    invited_by  uuid        not null references users (id),
    expires_at  timestamptz not null,
    accepted_at timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz not null default now(),
    constraint invites_token_hash_key unique (token_hash)
);

create unique index invites_pending_key on invites (tenant_id, lower(email))
    where accepted_at is null and revoked_at is null;

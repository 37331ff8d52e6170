-- The PostgreSQL clusters tenant databases may be placed on (from TENANT_CLUSTERS).
create table clusters (
    name       text primary key,
    host       text        not null,
    port       integer     not null,
    created_at timestamptz not null default now()
);

-- One row per tenant (organisation) and where its database lives.
create table tenants (
    id                   uuid primary key,
    slug                 text        not null,
    name                 text        not null,
    plan                 text        not null
        check (plan in ('free', 'starter', 'professional', 'enterprise')),
    status               text        not null
        check (status in ('provisioning', 'active', 'suspended', 'deleting')),
    cluster              text        not null references clusters (name),
    database_name        text        not null,
    role_name            text        not null,
    -- XChaCha20-Poly1305 nonce || ciphertext of the role's password.
    role_password        bytea       not null,
    schema_version       bigint      not null default 0,
    last_migration_error text,
    migrated_at          timestamptz,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    suspended_at         timestamptz,
    delete_after         timestamptz,
    constraint tenants_slug_key unique (slug),
    constraint tenants_database_key unique (cluster, database_name)
);

create index tenants_cluster_status_idx on tenants (cluster, status);
create index tenants_delete_after_idx on tenants (delete_after) where status = 'deleting';

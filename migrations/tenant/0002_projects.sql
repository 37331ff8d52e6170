-- Projects, their boards (ordered columns) and tasks, with the activity log of every
-- change. One tenant per database: no tenant_id column is needed, isolation is the
-- database itself.

create table projects (
    id               uuid primary key,
    key              text        not null unique check (key ~ '^[A-Z][A-Z0-9]{1,9}$'),
    name             text        not null check (length(name) between 1 and 200),
    description      text        not null default '',
    archived         boolean     not null default false,
    -- The next per-project task number (WEB-42), taken under the project's row lock.
    next_task_number integer     not null default 1,
    created_by       uuid        not null,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    version          integer     not null default 1
);

create table project_members (
    project_id uuid        not null references projects (id) on delete cascade,
    user_id    uuid        not null,
    role       text        not null check (role in ('lead', 'member', 'viewer')),
    added_at   timestamptz not null default now(),
    primary key (project_id, user_id)
);

-- A project's board: its columns, densely ordered by position (0, 1, 2, …).
create table board_columns (
    id         uuid primary key,
    project_id uuid    not null references projects (id) on delete cascade,
    name       text    not null check (length(name) between 1 and 100),
    position   integer not null check (position >= 0),
    wip_limit  integer check (wip_limit > 0),
    done       boolean not null default false,
    unique (project_id, position) deferrable initially deferred
);

create table tasks (
    id          uuid primary key,
    project_id  uuid        not null references projects (id) on delete cascade,
    number      integer     not null,
    title       text        not null check (length(title) between 1 and 500),
    description text        not null default '',
    column_id   uuid        not null references board_columns (id),
    -- Dense order within the column (0, 1, 2, …).
    position    integer     not null check (position >= 0),
    priority    text        not null default 'medium'
                            check (priority in ('low', 'medium', 'high', 'urgent')),
    assignee_id uuid,
    reporter_id uuid        not null,
    labels      text[]      not null default '{}',
    due_date    date,
    estimate_minutes integer check (estimate_minutes >= 0),
    parent_id   uuid references tasks (id) on delete cascade,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    version     integer     not null default 1,
    search      tsvector generated always as (
                    setweight(to_tsvector('simple', title), 'A')
                    || setweight(to_tsvector('simple', description), 'B')
                ) stored,
    unique (project_id, number),
    unique (column_id, position) deferrable initially deferred
);

create index tasks_project_idx on tasks (project_id, id);
create index tasks_assignee_idx on tasks (assignee_id) where assignee_id is not null;
create index tasks_parent_idx on tasks (parent_id) where parent_id is not null;
create index tasks_labels_idx on tasks using gin (labels);
create index tasks_search_idx on tasks using gin (search);

-- Every change: who, what, and the fields before and after.
create table activity (
    id          uuid primary key,
    project_id  uuid        not null references projects (id) on delete cascade,
    task_id     uuid references tasks (id) on delete cascade,
    actor_id    uuid        not null,
    action      text        not null,
    before      jsonb,
    after       jsonb,
    occurred_at timestamptz not null default now()
);

create index activity_project_idx on activity (project_id, id);
create index activity_task_idx on activity (task_id, id) where task_id is not null;

-- Replays of creates sent with the same Idempotency-Key answer the first result.
create table idempotency_keys (
    key         text        not null,
    user_id     uuid        not null,
    status      integer     not null,
    body        jsonb       not null,
    created_at  timestamptz not null default now(),
    primary key (user_id, key)
);

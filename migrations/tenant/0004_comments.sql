-- Comments on tasks: markdown kept raw (rendered and sanitised when shown), replies one
-- level deep, and the members each comment mentions.

create table comments (
    id         uuid primary key,
    task_id    uuid        not null references tasks (id) on delete cascade,
    project_id uuid        not null references projects (id) on delete cascade,
    author_id  uuid        not null,
    parent_id  uuid references comments (id) on delete cascade,
    body       text        not null check (length(body) between 1 and 20000),
    mentions   uuid[]      not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    edited     boolean     not null default false
);

create index comments_task_idx on comments (task_id, id);

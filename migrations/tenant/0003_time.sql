-- Time tracking: work logs (the date worked is kept apart from when it was logged) and
-- at most one running timer per user.

create table work_logs (
    id          uuid primary key,
    task_id     uuid        not null references tasks (id) on delete cascade,
    project_id  uuid        not null references projects (id) on delete cascade,
    user_id     uuid        not null,
    minutes     integer     not null check (minutes between 1 and 1440),
    worked_on   date        not null,
    note        text        not null default '' check (length(note) <= 2000),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create index work_logs_task_idx on work_logs (task_id);
create index work_logs_project_idx on work_logs (project_id, worked_on);
create index work_logs_user_idx on work_logs (user_id, worked_on);

create table timers (
    user_id    uuid primary key,
    task_id    uuid        not null references tasks (id) on delete cascade,
    started_at timestamptz not null default now()
);

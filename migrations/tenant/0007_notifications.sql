-- notification-service's tables (issue #23): each member's inbox, explicit watches of
-- tasks, and the members who are told nothing more (removed from the tenant or from a
-- project). notification-service reads tasks, projects, board columns and comments of
-- the same database (read-only) to find who is told and what about.

create table notifications (
    id            uuid primary key,
    recipient_id  uuid        not null,
    -- One notification per event per receiver: a redelivered event adds nothing.
    event_id      uuid        not null,
    kind          text        not null check (kind in (
                      'task_assigned', 'task_status_changed', 'comment_added', 'mentioned')),
    title         text        not null,
    body          text        not null default '',
    task_id       uuid,
    task_key      text,
    task_title    text,
    project_id    uuid,
    actor_id      uuid,
    created_at    timestamptz not null,
    read_at       timestamptz,
    snoozed_until timestamptz,
    archived_at   timestamptz,
    unique (event_id, recipient_id)
);

-- The inbox, newest first (ids are UUIDv7 of the event's time).
create index notifications_inbox_idx on notifications (recipient_id, id desc);
create index notifications_unread_idx on notifications (recipient_id)
    where read_at is null and archived_at is null;

-- Explicit watches: `watching` true adds a watcher, false silences someone who would
-- be told as reporter, assignee or commenter.
create table task_watchers (
    task_id    uuid        not null references tasks (id) on delete cascade,
    user_id    uuid        not null,
    watching   boolean     not null,
    set_by     uuid        not null,
    updated_at timestamptz not null default now(),
    primary key (task_id, user_id)
);

-- Members told nothing more: `scope` is the project they were removed from, or the
-- nil UUID for the whole tenant. Adding them back removes the row.
create table notification_exclusions (
    user_id    uuid        not null,
    scope      uuid        not null,
    since      timestamptz not null default now(),
    primary key (user_id, scope)
);

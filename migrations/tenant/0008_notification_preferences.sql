-- Each member's choice per notification kind: shown in the inbox or not, and emailed
-- not at all, at once or in a digest. No row means the kind's defaults.

create table notification_preferences (
    user_id    uuid        not null,
    kind       text        not null check (kind in (
                   'task_assigned', 'task_status_changed', 'comment_added', 'mentioned')),
    in_app     boolean     not null,
    email      text        not null check (email in ('off', 'instant', 'digest')),
    updated_at timestamptz not null default now(),
    primary key (user_id, kind)
);

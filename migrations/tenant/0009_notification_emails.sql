-- Email delivery of notifications (issue #23): each notification a member chose to get by
-- email waits here until it is sent, at once (`digest` false) or in the receiver's next
-- digest (`digest` true: every digest row of a receiver not yet tried shares the time
-- its window closes, so they go as one mail). notification-service claims due rows
-- (`attempts` + 1, `next_attempt_at` moved past the send), then marks them sent, or
-- sets the next try with backoff, or gives up (`failed_at`, with the last error kept).
-- Also: the `invited` kind (added to a project).

alter table notifications drop constraint notifications_kind_check;
alter table notifications add constraint notifications_kind_check check (kind in (
    'task_assigned', 'task_status_changed', 'comment_added', 'mentioned', 'invited'));
alter table notification_preferences drop constraint notification_preferences_kind_check;
alter table notification_preferences add constraint notification_preferences_kind_check
    check (kind in (
        'task_assigned', 'task_status_changed', 'comment_added', 'mentioned', 'invited'));

create table notification_emails (
    notification_id uuid        primary key references notifications (id) on delete cascade,
    recipient_id    uuid        not null,
    digest          boolean     not null,
    attempts        integer     not null default 0,
    next_attempt_at timestamptz not null,
    sent_at         timestamptz,
    failed_at       timestamptz,
    last_error      text
);

-- What is waiting, by when it is due.
create index notification_emails_due_idx on notification_emails (next_attempt_at)
    where sent_at is null and failed_at is null;
-- A receiver's open digest window (not tried yet).
create index notification_emails_window_idx on notification_emails (recipient_id)
    where digest and attempts = 0 and sent_at is null and failed_at is null;

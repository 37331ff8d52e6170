-- Email delivery of notifications (issue #23), and the `invited` kind (added to a project).
--
-- A mail is a row of `notification_mails`; the notifications it carries point at it
-- (`notifications.mail_id`). A notice emailed at once is a mail of its own (the mail's id
-- is the notification's). A notice for a receiver's digest joins the receiver's open
-- digest (`digest`, not tried yet: one per receiver), opened by their first such notice
-- and due `DIGEST_INTERVAL_SECS` later. notification-service claims due mails (`attempts`
-- + 1, `next_attempt_at` moved past the send), then marks them sent, or sets the next try
-- with backoff, or gives up (`failed_at`, the last error kept).

alter table notifications drop constraint notifications_kind_check;
alter table notifications add constraint notifications_kind_check check (kind in (
    'task_assigned', 'task_status_changed', 'comment_added', 'mentioned', 'invited'));
alter table notification_preferences drop constraint notification_preferences_kind_check;
alter table notification_preferences add constraint notification_preferences_kind_check
    check (kind in (
        'task_assigned', 'task_status_changed', 'comment_added', 'mentioned', 'invited'));

-- The primary key leads with the receiver: one index serves the inbox's pages (newest
-- first) and every lookup by id (always the caller's own), so the inbox index goes.
alter table notifications drop constraint notifications_pkey;
alter table notifications add primary key (recipient_id, id);
drop index notifications_inbox_idx;

create table notification_mails (
    id              uuid        primary key,
    recipient_id    uuid        not null,
    digest          boolean     not null,
    attempts        integer     not null default 0,
    next_attempt_at timestamptz not null,
    sent_at         timestamptz,
    failed_at       timestamptz,
    last_error      text
);

-- What is waiting, by when it is due.
create index notification_mails_due_idx on notification_mails (next_attempt_at)
    where sent_at is null and failed_at is null;
-- A receiver's open digest: at most one.
create unique index notification_mails_open_digest_idx on notification_mails (recipient_id)
    where digest and attempts = 0 and sent_at is null and failed_at is null;

alter table notifications add column mail_id uuid;
create index notifications_mail_idx on notifications (mail_id) where mail_id is not null;

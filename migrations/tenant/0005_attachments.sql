-- Files attached to tasks. The bytes live on disk under the service's attachments
-- directory, by tenant and content hash (identical files are stored once); the name a
-- client sent is kept here only as metadata and never becomes part of a path.

create table attachments (
    id           uuid primary key,
    task_id      uuid        not null references tasks (id) on delete cascade,
    project_id   uuid        not null references projects (id) on delete cascade,
    uploader_id  uuid        not null,
    file_name    text        not null check (length(file_name) between 1 and 255),
    content_type text        not null check (length(content_type) between 3 and 127),
    size_bytes   bigint      not null check (size_bytes >= 0),
    sha256       text        not null check (sha256 ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz not null default now()
);

create index attachments_task_idx on attachments (task_id, id);
create index attachments_sha_idx on attachments (sha256);

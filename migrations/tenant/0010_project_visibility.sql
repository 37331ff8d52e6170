-- Who reads a project (`common::auth::access`): `tenant`, every member of the tenant with
-- `tasks.read` (the default, what every project was before); `members`, only its project
-- members and the tenant roles that manage projects. project-service answers 404 to
-- everyone else, as if the project were not there.
alter table projects add column visibility text not null default 'tenant'
    check (visibility in ('tenant', 'members'));

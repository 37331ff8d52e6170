//! Who may read a project: the one rule project-service applies to its routes and
//! notification-service to its live stream (`docs/DESIGN.md`, Projects and tasks).
//!
//! A project's `visibility` is `tenant` (every member of the tenant with `tasks.read`
//! reads it, the default) or `members` (only its project members, and tenant roles that
//! hold `projects.manage`, read it).

use super::Perm;

/// Every member of the tenant reads the project.
pub const TENANT: &str = "tenant";
/// Only the project's members (and those who manage projects) read it.
pub const MEMBERS: &str = "members";
/// The visibilities a project may have.
pub const VISIBILITIES: [&str; 2] = [TENANT, MEMBERS];

/// Whether a caller who holds the permissions `has` says, a member of the project or not
/// (`member`), may read a project of `visibility`.
pub fn may_read_project(has: impl Fn(Perm) -> bool, visibility: &str, member: bool) -> bool {
    has(Perm::TasksRead) && (visibility != MEMBERS || member || has(Perm::ProjectsManage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn a_members_project_is_read_by_its_members_and_by_those_who_manage_projects() {
        let of = |role: Role| move |perm| role.permissions().contains(&perm);
        for role in [Role::Owner, Role::Admin, Role::Manager] {
            assert!(may_read_project(of(role), MEMBERS, false), "{role:?}");
        }
        for role in [Role::Member, Role::Viewer] {
            assert!(!may_read_project(of(role), MEMBERS, false), "{role:?}");
            assert!(may_read_project(of(role), MEMBERS, true), "{role:?}");
            assert!(may_read_project(of(role), TENANT, false), "{role:?}");
        }
        assert!(!may_read_project(|_| false, TENANT, true), "no tasks.read");
    }
}

//! Tenant roles and the fixed permission set of each. Services check permissions, never
//! role names, so a role can change its grants in one place.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Manager,
    Member,
    Viewer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Perm {
    TenantRead,
    TenantManage,
    UsersRead,
    UsersInvite,
    UsersManage,
    ProjectsRead,
    ProjectsCreate,
    ProjectsManage,
    TasksRead,
    TasksWrite,
    TasksManage,
    CommentsWrite,
    TimeWrite,
    LinksCreate,
    LinksManage,
    AnalyticsRead,
    /// Outgoing webhooks and incoming integrations (owner, admin).
    WebhooksManage,
}

impl Perm {
    pub const ALL: [Self; 17] = [
        Self::TenantRead,
        Self::TenantManage,
        Self::UsersRead,
        Self::UsersInvite,
        Self::UsersManage,
        Self::ProjectsRead,
        Self::ProjectsCreate,
        Self::ProjectsManage,
        Self::TasksRead,
        Self::TasksWrite,
        Self::TasksManage,
        Self::CommentsWrite,
        Self::TimeWrite,
        Self::LinksCreate,
        Self::LinksManage,
        Self::AnalyticsRead,
        Self::WebhooksManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantRead => "tenant.read",
            Self::TenantManage => "tenant.manage",
            Self::UsersRead => "users.read",
            Self::UsersInvite => "users.invite",
            Self::UsersManage => "users.manage",
            Self::ProjectsRead => "projects.read",
            Self::ProjectsCreate => "projects.create",
            Self::ProjectsManage => "projects.manage",
            Self::TasksRead => "tasks.read",
            Self::TasksWrite => "tasks.write",
            Self::TasksManage => "tasks.manage",
            Self::CommentsWrite => "comments.write",
            Self::TimeWrite => "time.write",
            Self::LinksCreate => "links.create",
            Self::LinksManage => "links.manage",
            Self::AnalyticsRead => "analytics.read",
            Self::WebhooksManage => "webhooks.manage",
        }
    }
}

impl Role {
    pub const ALL: [Self; 5] = [
        Self::Owner,
        Self::Admin,
        Self::Manager,
        Self::Member,
        Self::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }

    /// Seniority: owner 4 … viewer 0. Nobody grants or changes a role above their own.
    pub fn rank(self) -> u8 {
        match self {
            Self::Owner => 4,
            Self::Admin => 3,
            Self::Manager => 2,
            Self::Member => 1,
            Self::Viewer => 0,
        }
    }

    /// The permissions the role grants (the table in `docs/DESIGN.md`).
    pub fn permissions(self) -> &'static [Perm] {
        use Perm::*;
        match self {
            Self::Owner => &Perm::ALL,
            Self::Admin => &[
                TenantRead,
                UsersRead,
                UsersInvite,
                UsersManage,
                ProjectsRead,
                ProjectsCreate,
                ProjectsManage,
                TasksRead,
                TasksWrite,
                TasksManage,
                CommentsWrite,
                TimeWrite,
                LinksCreate,
                LinksManage,
                AnalyticsRead,
                WebhooksManage,
            ],
            Self::Manager => &[
                TenantRead,
                UsersRead,
                UsersInvite,
                ProjectsRead,
                ProjectsCreate,
                ProjectsManage,
                TasksRead,
                TasksWrite,
                TasksManage,
                CommentsWrite,
                TimeWrite,
                LinksCreate,
                LinksManage,
                AnalyticsRead,
            ],
            Self::Member => &[
                TenantRead,
                UsersRead,
                ProjectsRead,
                TasksRead,
                TasksWrite,
                CommentsWrite,
                TimeWrite,
                LinksCreate,
            ],
            Self::Viewer => &[TenantRead, UsersRead, ProjectsRead, TasksRead],
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_grants_a_subset_of_the_role_above_it() {
        for pair in Role::ALL.windows(2) {
            let (higher, lower) = (pair[0], pair[1]);
            for perm in lower.permissions() {
                assert!(
                    higher.permissions().contains(perm),
                    "{} grants {} but {} does not",
                    lower.as_str(),
                    perm.as_str(),
                    higher.as_str()
                );
            }
        }
    }

    #[test]
    fn only_the_owner_manages_the_tenant() {
        for role in Role::ALL {
            assert_eq!(
                role.permissions().contains(&Perm::TenantManage),
                role == Role::Owner,
                "{}",
                role.as_str()
            );
        }
    }
}

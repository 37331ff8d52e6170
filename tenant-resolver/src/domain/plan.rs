//! Plans and the limits they carry. Other services enforce the limits; the resolver
//! serves them with the tenant.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    #[default]
    Free,
    Starter,
    Professional,
    Enterprise,
}

/// `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    pub users: Option<u32>,
    pub projects: Option<u32>,
    pub storage_bytes: Option<u64>,
}

const GIB: u64 = 1024 * 1024 * 1024;

impl Plan {
    pub const ALL: [Self; 4] = [
        Self::Free,
        Self::Starter,
        Self::Professional,
        Self::Enterprise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Starter => "starter",
            Self::Professional => "professional",
            Self::Enterprise => "enterprise",
        }
    }

    pub fn limits(self) -> Limits {
        match self {
            Self::Free => Limits {
                users: Some(5),
                projects: Some(3),
                storage_bytes: Some(GIB / 2),
            },
            Self::Starter => Limits {
                users: Some(25),
                projects: Some(25),
                storage_bytes: Some(10 * GIB),
            },
            Self::Professional => Limits {
                users: Some(200),
                projects: None,
                storage_bytes: Some(100 * GIB),
            },
            Self::Enterprise => Limits {
                users: None,
                projects: None,
                storage_bytes: None,
            },
        }
    }
}

impl std::str::FromStr for Plan {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown plan `{s}`"))
    }
}

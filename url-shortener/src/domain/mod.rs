//! Types that check themselves: link codes, targets, and the create / update bodies.

pub mod code;
pub mod visitor;

use chrono::{DateTime, Duration, Utc};
use common::FieldError;
use common::extract::{FieldErrors, Validate};
use common::grant::SharedTarget;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

pub use code::Code;

/// Lifetime of a link created without `ttl` or `expires_at`.
pub const DEFAULT_TTL_SECS: i64 = 7 * 24 * 3600;
/// Longest lifetime a link may be given.
pub const MAX_TTL_SECS: i64 = 366 * 24 * 3600;
pub const PASSWORD_MIN: usize = 4;
pub const PASSWORD_MAX: usize = 128;
pub const MAX_VISITS_LIMIT: i64 = 1_000_000_000;

/// What a link opens: one task or one project of the creator's tenant;
/// `{"type": "task", "id": "…"}` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: TargetKind,
    pub id: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Task,
    Project,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Project => "project",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "task" => Some(Self::Task),
            "project" => Some(Self::Project),
            _ => None,
        }
    }
}

impl Target {
    pub fn shared(self) -> SharedTarget {
        match self.kind {
            TargetKind::Task => SharedTarget::Task(self.id),
            TargetKind::Project => SharedTarget::Project(self.id),
        }
    }

    /// project-service's API path of the target, to check it exists.
    pub fn api_path(self) -> String {
        match self.kind {
            TargetKind::Task => format!("/api/v1/tasks/{}", self.id),
            TargetKind::Project => format!("/api/v1/projects/{}", self.id),
        }
    }
}

/// `POST /api/v1/links`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    pub target: Target,
    /// Seconds from now until the link expires (or give `expires_at`; default 7 days).
    pub ttl: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Visitors must enter it (4–128 characters); stored as an argon2id hash.
    pub password: Option<String>,
    /// The link answers 410 once it has been opened this many times.
    pub max_visits: Option<i64>,
}

impl CreateLink {
    pub fn expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match (self.expires_at, self.ttl) {
            (Some(at), _) => at,
            (None, Some(ttl)) => now + Duration::seconds(ttl),
            (None, None) => now + Duration::seconds(DEFAULT_TTL_SECS),
        }
    }
}

impl Validate for CreateLink {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(
            !(self.ttl.is_some() && self.expires_at.is_some()),
            "ttl",
            "give either `ttl` or `expires_at`, not both",
        );
        check_expiry(&mut errors, self.ttl, self.expires_at);
        if let Some(password) = &self.password {
            check_password(&mut errors, password);
        }
        if let Some(max) = self.max_visits {
            check_max_visits(&mut errors, max);
        }
        errors.finish()
    }
}

/// `PATCH /api/v1/links/{code}`: absent fields stay; `password: null` and
/// `max_visits: null` remove them.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLink {
    pub ttl: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub password: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub max_visits: Option<Option<i64>>,
    pub disabled: Option<bool>,
}

impl UpdateLink {
    pub fn expiry(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.expires_at
            .or_else(|| self.ttl.map(|ttl| now + Duration::seconds(ttl)))
    }
}

impl Validate for UpdateLink {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = FieldErrors::new();
        errors.check(
            !(self.ttl.is_some() && self.expires_at.is_some()),
            "ttl",
            "give either `ttl` or `expires_at`, not both",
        );
        check_expiry(&mut errors, self.ttl, self.expires_at);
        if let Some(Some(password)) = &self.password {
            check_password(&mut errors, password);
        }
        if let Some(Some(max)) = self.max_visits {
            check_max_visits(&mut errors, max);
        }
        errors.finish()
    }
}

/// A present `null` is `Some(None)`; an absent field is `None` (with `#[serde(default)]`).
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(de).map(Some)
}

fn check_expiry(errors: &mut FieldErrors, ttl: Option<i64>, at: Option<DateTime<Utc>>) {
    if let Some(ttl) = ttl {
        errors.check(
            (60..=MAX_TTL_SECS).contains(&ttl),
            "ttl",
            "must be between 60 seconds and 366 days",
        );
    }
    if let Some(at) = at {
        let left = (at - Utc::now()).num_seconds();
        errors.check(
            (1..=MAX_TTL_SECS).contains(&left),
            "expires_at",
            "must be in the future and at most 366 days away",
        );
    }
}

fn check_password(errors: &mut FieldErrors, password: &str) {
    errors.check(
        (PASSWORD_MIN..=PASSWORD_MAX).contains(&password.chars().count()),
        "password",
        "must be 4 to 128 characters",
    );
}

fn check_max_visits(errors: &mut FieldErrors, max: i64) {
    errors.check(
        (1..=MAX_VISITS_LIMIT).contains(&max),
        "max_visits",
        "must be between 1 and 1000000000",
    );
}

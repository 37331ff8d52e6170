//! What each member chooses per kind: shown in the inbox or not, and emailed not at all,
//! at once, or in a digest.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::notification::Kind;

/// How a kind reaches a member by email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Email {
    Off,
    Instant,
    Digest,
}

impl Email {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Instant => "instant",
            Self::Digest => "digest",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Off, Self::Instant, Self::Digest]
            .into_iter()
            .find(|e| e.as_str() == text)
    }
}

/// One kind's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Preference {
    pub kind: Kind,
    /// Shown in the inbox.
    pub in_app: bool,
    pub email: Email,
}

impl Preference {
    /// A kind's choice until the member makes one: everything in the inbox; what is
    /// addressed to them (an assignment, a mention, a new project) emailed at once, the
    /// rest in a digest.
    pub fn default_for(kind: Kind) -> Self {
        let email = match kind {
            Kind::TaskAssigned | Kind::Mentioned | Kind::Invited | Kind::WebhookDisabled => {
                Email::Instant
            }
            Kind::TaskStatusChanged | Kind::CommentAdded => Email::Digest,
        };
        Self {
            kind,
            in_app: true,
            email,
        }
    }
}

/// Every kind's choice of one member.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Preferences {
    pub kinds: Vec<Preference>,
}

/// A change to some kinds' choices; what a kind leaves out stays as it was.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferenceChange {
    pub kind: Kind,
    pub in_app: Option<bool>,
    pub email: Option<Email>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesChange {
    pub kinds: Vec<PreferenceChange>,
}

//! Types that validate themselves: a value of these types is known to be good.

mod plan;
mod signup;
mod slug;

pub use plan::{Limits, Plan};
pub use signup::{OwnerRequest, SignupRequest};
pub use slug::Slug;

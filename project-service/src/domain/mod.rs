//! The service's nouns as the API shows them and the data layer yields them, and the
//! request bodies that validate themselves before a handler sees them.

pub mod activity;
pub mod attachment;
pub mod board;
pub mod column;
pub mod comment;
pub mod member;
pub mod project;
pub mod share;
pub mod task;
pub mod time;

//! What notification-service works with: the events it reads, who they tell, and the
//! notifications it keeps.

pub mod email;
pub mod event;
pub mod fanout;
pub mod notification;
pub mod preference;
pub mod stream;
pub mod unsubscribe;
pub mod webhook;

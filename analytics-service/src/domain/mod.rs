//! Types that check themselves: accepted events, date ranges, and the reports computed
//! from events.

pub mod event;
pub mod range;
pub mod report;

//! What an account password must be. Hashing and checking are `common::password`'s (one
//! bounded hasher for the whole fleet).

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// Length in characters within 8..=128 (NIST SP 800-63B: length, no composition rules).
pub fn acceptable(password: &str) -> bool {
    (MIN_LEN..=MAX_LEN).contains(&password.chars().count())
}

//! Open event streams (`/api/v1/stream`, `/api/v1/stream/shared`) counted per tenant and
//! per user, so one user's tabs or one tenant's share pages cannot hold every connection
//! of the gateway and the stream service. A stream is counted from its admission until
//! its body ends (the client or the upstream closed it); past a limit a new one is
//! refused with a 429 problem. The user of a stream opened with a ticket is known only
//! once notification-service has redeemed it: it names them in `X-Stream-User`, which
//! the gateway counts and removes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// The response header in which the stream service names a stream's user.
pub const STREAM_USER_HEADER: &str = "x-stream-user";

pub struct Streams {
    per_user: usize,
    per_tenant: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    tenants: HashMap<Uuid, usize>,
    users: HashMap<(Uuid, Uuid), usize>,
}

/// Which limit a stream would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Tenant(usize),
    User(usize),
}

/// One open stream; dropping it (with the answer's body) frees its place.
pub struct Slot {
    streams: Arc<Streams>,
    tenant: Uuid,
    user: Option<Uuid>,
}

impl Streams {
    pub fn new(per_user: usize, per_tenant: usize) -> Self {
        Self {
            per_user,
            per_tenant,
            open: Mutex::new(Open::default()),
        }
    }

    /// A place for a stream of `tenant` (and of `user`, when the token names them).
    pub fn admit(self: &Arc<Self>, tenant: Uuid, user: Option<Uuid>) -> Result<Slot, Full> {
        let mut open = self.open.lock().expect("streams lock");
        let in_tenant = open.tenants.get(&tenant).copied().unwrap_or(0);
        if in_tenant >= self.per_tenant {
            return Err(Full::Tenant(self.per_tenant));
        }
        if let Some(user) = user
            && open.users.get(&(tenant, user)).copied().unwrap_or(0) >= self.per_user
        {
            return Err(Full::User(self.per_user));
        }
        *open.tenants.entry(tenant).or_default() += 1;
        if let Some(user) = user {
            *open.users.entry((tenant, user)).or_default() += 1;
        }
        Ok(Slot {
            streams: Arc::clone(self),
            tenant,
            user,
        })
    }
}

impl Slot {
    /// Counts the slot's stream for `user` too, learnt from the upstream's answer.
    pub fn name_user(&mut self, user: Uuid) -> Result<(), Full> {
        if self.user.is_some() {
            return Ok(());
        }
        let mut open = self.streams.open.lock().expect("streams lock");
        let count = open.users.entry((self.tenant, user)).or_default();
        if *count >= self.streams.per_user {
            return Err(Full::User(self.streams.per_user));
        }
        *count += 1;
        self.user = Some(user);
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().expect("streams lock");
        let release = |map_count: Option<&mut usize>| match map_count {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => true,
        };
        if release(open.tenants.get_mut(&self.tenant)) {
            open.tenants.remove(&self.tenant);
        }
        if let Some(user) = self.user
            && release(open.users.get_mut(&(self.tenant, user)))
        {
            open.users.remove(&(self.tenant, user));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_counted_per_tenant_and_user_until_they_end() {
        let streams = Arc::new(Streams::new(2, 3));
        let (tenant, other, ann, bob) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let a1 = streams.admit(tenant, Some(ann)).unwrap();
        let _a2 = streams.admit(tenant, Some(ann)).unwrap();
        assert_eq!(streams.admit(tenant, Some(ann)).err(), Some(Full::User(2)));
        let mut b1 = streams.admit(tenant, None).unwrap();
        b1.name_user(bob).unwrap();
        assert_eq!(
            streams.admit(tenant, Some(bob)).err(),
            Some(Full::Tenant(3))
        );
        assert!(streams.admit(other, Some(ann)).is_ok(), "another tenant");
        drop(a1);
        let _a3 = streams.admit(tenant, Some(ann)).unwrap();
        drop(b1);
        let mut b2 = streams.admit(tenant, None).unwrap();
        assert_eq!(b2.name_user(ann).err(), Some(Full::User(2)), "named later");
        assert!(
            !streams
                .open
                .lock()
                .unwrap()
                .users
                .contains_key(&(tenant, bob))
        );
    }
}

//! What each worker thread looked up last, kept by the thread itself: a hit costs a hash
//! of the key and no shared state, where the shared caches behind it (moka) take locks,
//! keep access order and run their housekeeping on the request path.

use std::cell::RefCell;
use std::collections::HashMap;

use thread_local::ThreadLocal;

/// Entries a thread keeps at most; past that it forgets them all and starts over.
const MAX_PER_THREAD: usize = 4096;

type Map<V> = RefCell<HashMap<Box<str>, V, foldhash::quality::RandomState>>;

/// A map per thread, per owner: two caches never see each other's entries, even on the
/// same thread (several gateways may share a process, in tests).
pub struct PerThread<V: Send> {
    maps: ThreadLocal<Map<V>>,
}

impl<V: Clone + Send> PerThread<V> {
    pub fn new() -> Self {
        Self {
            maps: ThreadLocal::new(),
        }
    }

    /// This thread's entry for `key`, if `fresh` says it may still be used.
    pub fn get(&self, key: &str, fresh: impl FnOnce(&V) -> bool) -> Option<V> {
        let map = self.maps.get()?.borrow();
        map.get(key).filter(|value| fresh(value)).cloned()
    }

    pub fn put(&self, key: &str, value: V) {
        let mut map = self.maps.get_or_default().borrow_mut();
        if map.len() >= MAX_PER_THREAD && !map.contains_key(key) {
            map.clear();
        }
        map.insert(key.into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_PER_THREAD, PerThread};

    #[test]
    fn owners_are_apart_and_stale_entries_are_not_used() {
        let (a, b) = (PerThread::new(), PerThread::new());
        a.put("acme", 1);
        b.put("acme", 2);
        assert_eq!(a.get("acme", |_| true), Some(1));
        assert_eq!(b.get("acme", |_| true), Some(2));
        assert_eq!(a.get("acme", |_| false), None);
        assert_eq!(a.get("globex", |_| true), None);
        // Another thread has a map of its own.
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(a.get("acme", |_| true), None));
        });
    }

    #[test]
    fn a_full_map_starts_over() {
        let map = PerThread::new();
        for i in 0..MAX_PER_THREAD {
            map.put(&i.to_string(), i);
        }
        assert_eq!(map.get("0", |_| true), Some(0));
        map.put("one more", 0);
        assert_eq!(map.get("0", |_| true), None);
        assert_eq!(map.get("one more", |_| true), Some(0));
    }
}

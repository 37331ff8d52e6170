//! The gateway's per-request metrics through handles each thread keeps, so a request
//! costs atomic updates rather than registry lookups that build and hash label sets.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use metrics::{Counter, Histogram, Label};

/// A counter's name and its label values, padded with `""`: all `'static`, so they are
/// told apart by where they live rather than by their bytes (the same text at two
/// places makes two handles to the one metric the registry keeps under it).
#[derive(Clone, Copy)]
struct Key(&'static str, [&'static str; 4]);

impl Key {
    fn words(&self) -> impl Iterator<Item = (*const u8, usize)> {
        std::iter::once(self.0)
            .chain(self.1)
            .map(|s| (s.as_ptr(), s.len()))
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.words().eq(other.words())
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for (at, len) in self.words() {
            state.write_usize(at as usize);
            state.write_usize(len);
        }
    }
}

thread_local! {
    static HANDLES: RefCell<HashMap<Key, (Counter, Histogram), foldhash::fast::FixedState>> =
        RefCell::new(HashMap::default());
}

/// Adds one to `counter` labelled `labels`, and records `seconds` in `histogram`
/// labelled by the first `timed` of them.
pub(crate) fn count(
    counter: &'static str,
    histogram: &'static str,
    labels: &[(&'static str, &'static str)],
    timed: usize,
    seconds: f64,
) {
    let mut values = [""; 4];
    for (slot, (_, value)) in values.iter_mut().zip(labels) {
        *slot = value;
    }
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        let (events, durations) = handles.entry(Key(counter, values)).or_insert_with(|| {
            let all: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, *v)).collect();
            let some = all[..timed.min(all.len())].to_vec();
            (
                metrics::counter!(counter, all),
                metrics::histogram!(histogram, some),
            )
        });
        events.increment(1);
        durations.record(seconds);
    });
}

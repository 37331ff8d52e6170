//! The gateway's per-request metrics through handles each thread keeps, so a request
//! costs atomic updates rather than registry lookups that build and hash label sets.

use std::cell::RefCell;
use std::collections::HashMap;

use metrics::{Counter, Histogram, Label};

/// A counter's name and its label values, padded with `""`.
type Key = (&'static str, [&'static str; 4]);

thread_local! {
    static HANDLES: RefCell<HashMap<Key, (Counter, Histogram)>> = RefCell::new(HashMap::new());
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
        let (events, durations) = handles.entry((counter, values)).or_insert_with(|| {
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

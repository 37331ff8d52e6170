//! The gateway lane's request-head reader (`gateway/src/fast/request.rs`) on any bytes:
//! it must never panic, and a head it takes for itself must be sane (inside the buffer,
//! a body it may buffer, an origin-form target, a Host without line breaks).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = gateway::fuzz_head(data);
});

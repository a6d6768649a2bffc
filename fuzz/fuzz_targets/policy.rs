//! The engine's `policy` target: see `pointsman::fuzzing::policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pointsman::fuzzing::policy(data));

//! The engine's `share_entry` target: see `pointsman::fuzzing::share_entry`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pointsman::fuzzing::share_entry(data));

//! The engine's `dataset` target: see `pointsman::fuzzing::dataset`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pointsman::fuzzing::dataset(data));

//! The engine's `npy` target: see `pointsman::fuzzing::npy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pointsman::fuzzing::npy(data));

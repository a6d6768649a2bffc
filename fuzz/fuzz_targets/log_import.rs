//! The engine's `log_import` target: see `pointsman::fuzzing::log_import`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pointsman::fuzzing::log_import(data));

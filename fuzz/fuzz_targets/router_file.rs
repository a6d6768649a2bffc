//! The engine's `router_file` target: see `pointsman::fuzzing::router_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pointsman::fuzzing::router_file(data));

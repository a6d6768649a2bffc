//! The gateway's `gateway_config` target: see `pointsman_gateway::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pointsman_gateway::fuzzing::config(data));

//! The decision-log reader: see `pointsman_gateway::fuzzing::decision_log`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pointsman_gateway::fuzzing::decision_log(data));

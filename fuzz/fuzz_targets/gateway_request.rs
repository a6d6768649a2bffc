//! The gateway's request parsing (headers and Chat Completions body) and its stream-event
//! splitter: see `pointsman_gateway::fuzzing::request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pointsman_gateway::fuzzing::request(data));

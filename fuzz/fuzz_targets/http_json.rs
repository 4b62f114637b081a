//! cargo-fuzz target `http_json`: see `strata::fuzzing::http_json` (the replay test
//! `tests/fuzz_replay.rs` runs the same function over the committed corpus).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata::fuzzing::http_json(data));

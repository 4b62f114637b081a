//! cargo-fuzz target `meta_log`: see `strata::fuzzing::meta_log` (the replay test
//! `tests/fuzz_replay.rs` runs the same function over the committed corpus).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata::fuzzing::meta_log(data));

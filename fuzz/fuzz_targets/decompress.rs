//! cargo-fuzz target `decompress`: see `strata::fuzzing::decompress` (the replay test
//! `tests/fuzz_replay.rs` runs the same function over the committed corpus).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata::fuzzing::decompress(data));

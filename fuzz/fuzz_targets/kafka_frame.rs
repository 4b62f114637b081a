//! cargo-fuzz target `kafka_frame`: see `strata::fuzzing::kafka_frame` (the replay test
//! `tests/fuzz_replay.rs` runs the same function over the committed corpus).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata::fuzzing::kafka_frame(data));

//! cargo-fuzz target `sasl`: see `strata::fuzzing::sasl` (the replay test
//! `tests/fuzz_replay.rs` runs the same function over the committed corpus).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata::fuzzing::sasl(data));

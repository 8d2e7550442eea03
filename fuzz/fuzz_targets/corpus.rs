//! `cargo fuzz run -s none corpus`: see harness.rs for what the input bytes mean.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::corpus(data));

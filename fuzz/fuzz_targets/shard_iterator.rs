#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kinesin_fuzz::shard_iterator(data));

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kinesin_fuzz::cbor_request(data));

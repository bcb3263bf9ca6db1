#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| doubleratchet_fuzz::group_session(data));

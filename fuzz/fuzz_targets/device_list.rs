#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| doubleratchet_fuzz::device_list(data));

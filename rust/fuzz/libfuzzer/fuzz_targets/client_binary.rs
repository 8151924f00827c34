#![no_main]
// The body is nexus_fuzz::client_binary, which tests/corpus.rs also replays on stable.
libfuzzer_sys::fuzz_target!(|data: &[u8]| nexus_fuzz::client_binary(data));

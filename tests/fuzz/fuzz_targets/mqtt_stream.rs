//! Any bytes, cut into frames anywhere, through the MQTT wire's framer and
//! both versions' decoders: never a panic, and the same packets however
//! the bytes were cut.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (bool, Vec<u8>, Vec<u8>)| {
    let (version5, data, cuts) = input;
    holdline_engine::fuzzing::mqtt_stream(version5, &data, &cuts);
});

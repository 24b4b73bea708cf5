//! Entry points for the fuzz targets (`tests/fuzz`) into code that is not
//! public otherwise. Not an API.

use crate::wire::mqtt_packets;

/// Feeds `data` to the MQTT framer in pieces cut where `cuts` say and
/// decodes every whole packet: must never panic, and must find the same
/// packets however the bytes are cut.
pub fn mqtt_stream(version5: bool, data: &[u8], cuts: &[u8]) {
    let whole = mqtt_packets(version5, &[data]);
    let mut pieces = Vec::new();
    let mut rest = data;
    for &cut in cuts {
        let at = usize::from(cut).min(rest.len());
        let (piece, tail) = rest.split_at(at);
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);
    let split = mqtt_packets(version5, &pieces);
    assert_eq!(whole, split, "framing depends on how the bytes were cut");
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The fuzz target's property on random input, in the suite.
        #[test]
        fn any_bytes_cut_anywhere_frame_alike_and_never_panic(
            version5 in any::<bool>(),
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            super::mqtt_stream(version5, &data, &cuts);
        }
    }
}

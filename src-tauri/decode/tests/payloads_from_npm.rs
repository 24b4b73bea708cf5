//! Binary payloads made by other implementations (npm's `@msgpack/msgpack`,
//! `cborg` and `protobufjs`, run by the test) read back as JSON by the
//! engine's decoders; malformed ones give a reason, never a panic.

use holdline_decode::Decoder;
use holdline_testkit::npm_encoders::encode_with_npm;
use serde_json::{Value, json};

/// Values every format can carry: JSON's own types, nesting, big and
/// negative integers, unicode.
fn samples() -> Vec<Value> {
    vec![
        json!({"sym": "HOLD", "px": 101.25, "q": 3}),
        json!([
            1,
            -1,
            4_294_967_296_i64,
            -9_007_199_254_740_991_i64,
            0.5,
            true,
            false,
            null
        ]),
        json!({"nested": {"list": [{"a": "ünïcødé ✓"}, []], "empty": {}}, "text": ""}),
        json!("just a string"),
        json!(12345),
    ]
}

#[test]
fn messagepack_and_cbor_from_npm_read_back_as_the_same_json() {
    for (format, setting) in [("msgpack", "msgpack"), ("cbor", "cbor")] {
        let requests: Vec<Value> = samples()
            .into_iter()
            .map(|value| json!({"format": format, "value": value}))
            .collect();
        let payloads = encode_with_npm(&requests);
        let decoder = Decoder::parse(setting).unwrap();
        for (value, payload) in samples().iter().zip(&payloads) {
            assert_eq!(
                &decoder.decode(payload).unwrap(),
                value,
                "{format}: {}",
                hex::encode(payload)
            );
        }
    }
}

#[test]
fn malformed_payloads_give_the_reason() {
    let payloads = encode_with_npm(&[
        json!({"format": "msgpack", "value": {"sym": "HOLD", "list": [1, 2, 3]}}),
        json!({"format": "cbor", "value": {"sym": "HOLD", "list": [1, 2, 3]}}),
    ]);
    for (setting, payload) in ["msgpack", "cbor"].into_iter().zip(&payloads) {
        let decoder = Decoder::parse(setting).unwrap();
        let cut = &payload[..payload.len() - 3];
        let err = decoder.decode(cut).unwrap_err();
        assert!(!err.reason.is_empty(), "{setting}: {err}");
        let mut longer = payload.clone();
        longer.push(0x01);
        let err = decoder.decode(&longer).unwrap_err();
        assert!(err.reason.contains("left after"), "{setting}: {err}");
        assert!(decoder.decode(&[]).is_err(), "{setting}: empty");
    }
}

const MARKET_PROTO: &str = r#"syntax = "proto3";
package market;

enum Side { SIDE_UNSPECIFIED = 0; BUY = 1; SELL = 2; }

message Level { double price = 1; uint32 size = 2; }

message Tick {
  string symbol = 1;
  double price = 2;
  int64 seq = 3;
  repeated string tags = 4;
  Side side = 5;
  Level best = 6;
  map<string, int32> counts = 7;
  bytes raw = 8;
  bool halted = 9;
}
"#;

fn tick() -> Value {
    json!({
        "symbol": "HOLD", "price": 101.5, "seq": 42, "tags": ["a", "b"], "side": 2,
        "best": {"price": 101.25, "size": 7}, "counts": {"x": 1}, "raw": [1, 2, 255],
        "halted": false
    })
}

/// proto3's JSON mapping of `tick()`: 64-bit integers as strings, enums by
/// name, bytes in base64, every field present.
fn tick_as_json() -> Value {
    json!({
        "symbol": "HOLD", "price": 101.5, "seq": "42", "tags": ["a", "b"], "side": "SELL",
        "best": {"price": 101.25, "size": 7}, "counts": {"x": 1}, "raw": "AQL/",
        "halted": false
    })
}

#[test]
fn protobuf_from_npm_reads_back_with_a_proto_file_or_a_descriptor_set() {
    let dir = tempfile::tempdir().unwrap();
    let proto = dir.path().join("market.proto");
    std::fs::write(&proto, MARKET_PROTO).unwrap();
    let payloads = encode_with_npm(&[
        json!({"format": "protobuf", "proto": proto, "message": "market.Tick", "value": tick()}),
        json!({"format": "descriptor_set", "proto": proto}),
    ]);
    let set = dir.path().join("market.pb");
    std::fs::write(&set, &payloads[1]).unwrap();
    for schema in [&proto, &set] {
        let decoder =
            Decoder::parse(&format!("protobuf:{}:market.Tick", schema.display())).unwrap();
        assert_eq!(
            decoder.decode(&payloads[0]).unwrap(),
            tick_as_json(),
            "{}",
            schema.display()
        );
        assert_eq!(decoder.to_string(), "protobuf:market.Tick");
        let err = decoder.decode(&[0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(err.format, "Protocol Buffers");
    }
}

#[test]
fn a_bad_schema_or_message_name_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let proto = dir.path().join("market.proto");
    std::fs::write(&proto, MARKET_PROTO).unwrap();
    let unknown = Decoder::parse(&format!("protobuf:{}:market.Quote", proto.display()))
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("market.Quote") && unknown.contains("market.Tick"),
        "{unknown}"
    );
    let broken = dir.path().join("broken.proto");
    std::fs::write(
        &broken,
        "syntax = \"proto3\"; message Tick { string symbol = ; }",
    )
    .unwrap();
    let err = Decoder::parse(&format!("protobuf:{}:Tick", broken.display()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("broken.proto") && err.contains("does not compile"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.pb");
    std::fs::write(&garbage, b"\xff\xfe not a descriptor set").unwrap();
    let err = Decoder::parse(&format!("protobuf:{}:Tick", garbage.display()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a usable schema"), "{err}");
}

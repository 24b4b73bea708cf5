//! Binary payloads made by other implementations, from npm (pinned in
//! `servers/package.json`): MessagePack by `@msgpack/msgpack`, CBOR by
//! `cborg`, Protocol Buffers by `protobufjs` (messages, and descriptor
//! sets through its `ext/descriptor`). Runs `servers/encode.mjs` once per
//! call.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// Each request's payload, in order. A request is `{"format": "msgpack"
/// | "cbor", "value": V}`, `{"format": "protobuf", "proto": PATH,
/// "message": NAME, "value": V}` or `{"format": "descriptor_set",
/// "proto": PATH}`.
pub fn encode_with_npm(requests: &[Value]) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("servers");
    assert!(
        dir.join("node_modules").is_dir(),
        "{} has no node_modules: run scripts/setup (npm ci there)",
        dir.display()
    );
    let output = Command::new("node")
        .arg(dir.join("encode.mjs"))
        .arg(Value::Array(requests.to_vec()).to_string())
        .current_dir(&dir)
        .output()
        .expect("node runs encode.mjs (run scripts/setup)");
    assert!(
        output.status.success(),
        "encode.mjs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hexes: Vec<String> = serde_json::from_slice(&output.stdout).expect("a JSON array");
    hexes
        .iter()
        .map(|hex| hex::decode(hex).expect("hex from encode.mjs"))
        .collect()
}

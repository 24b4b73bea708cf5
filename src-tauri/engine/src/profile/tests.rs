use serde_json::json;

use super::*;

fn refused(value: Value) -> ProfileError {
    Profile::load(&value).expect_err(&value.to_string())
}

#[test]
fn no_protocol_key_is_holdline_and_protocol_names_select_the_wire() {
    assert_eq!(
        Profile::load(&json!({})).unwrap().wire,
        WireProfile::Holdline
    );
    for name in protocol::ALL {
        assert_eq!(Profile::for_protocol(name).unwrap().protocol(), name);
    }
    let err = refused(json!({"protocol": "stomp"}));
    assert_eq!(err.key, "protocol");
}

#[test]
fn a_full_json_profile_loads() {
    let profile = Profile::load(&json!({
        "protocol": "json",
        "auth": {"query": "access_token"},
        "headers": {"X-Client": "holdline {token}"},
        "subprotocols": ["v2.feed"],
        "heartbeat_ms": 5000,
        "close": {"login": [4401], "stop": [4403, 4404]},
        "on_open": [{"op": "login", "token": "{token}"}],
        "ready": {"/op": "ready"},
        "ready_timeout_ms": 3000,
        "refused": {"/op": "denied"},
        "subscribe": {"op": "sub", "ch": "{feed}", "since": "{since}"},
        "unsubscribe": {"op": "unsub", "ch": "{feed}"},
        "event": {"match": {"/op": "ev"}, "feed": "/ch", "seq": "/n", "epoch": "/run", "data": "/d"},
        "sequence": "increasing",
        "publish": {"op": "pub", "ch": "{feed}", "id": "{id}", "d": "{data}"},
        "ack": {"match": {"/op": "ok"}, "id": "/id", "seq": "/n"},
        "keepalive": {"every_ms": 10000, "send": {"op": "hb"}},
        "answer": [{"match": {"/op": "ping"}, "send": {"op": "pong", "ts": "{in:/ts}"}}],
        "ignore": [{"/op": "welcome"}]
    }))
    .expect("valid");
    assert_eq!(profile.common.auth, Auth::Query("access_token".into()));
    assert_eq!(profile.common.close_stop, [4403, 4404]);
    let WireProfile::Json(json) = profile.wire else {
        panic!("json")
    };
    assert_eq!(json.sequence, Sequence::Increasing);
    assert!(json.subscribe.unwrap().uses(&Placeholder::Since));
    assert_eq!(json.answer.len(), 1);
}

#[test]
fn every_refusal_names_its_key() {
    let cases = [
        (json!({"protocol": "json", "subscrbe": {}}), "subscrbe"),
        (json!({"protocol": 7}), "protocol"),
        (
            json!({"protocol": "json", "heartbeat_ms": "fast"}),
            "heartbeat_ms",
        ),
        (
            json!({"protocol": "json", "heartbeat_ms": 10}),
            "heartbeat_ms",
        ),
        (json!({"protocol": "json", "auth": "basic"}), "auth"),
        (
            json!({"protocol": "json", "auth": {"cookie": "x"}}),
            "auth.cookie",
        ),
        (
            json!({"protocol": "json", "headers": {"X": "{tokn}"}}),
            "headers.X",
        ),
        (
            json!({"protocol": "json", "headers": {"bad name": "v"}}),
            "headers.bad name",
        ),
        (
            json!({"protocol": "json", "subprotocols": ["a b"]}),
            "subprotocols[0]",
        ),
        (
            json!({"protocol": "json", "close": {"login": [99]}}),
            "close.login[0]",
        ),
        (
            json!({"protocol": "json", "close": {"restart": []}}),
            "close.restart",
        ),
        (
            json!({"protocol": "json", "event": {"seq": "n"}}),
            "event.seq",
        ),
        (
            json!({"protocol": "json", "event": {"sequence": "/n"}}),
            "event.sequence",
        ),
        (
            json!({"protocol": "json", "event": {"match": {"type": "e"}}}),
            "event.match[\"type\"]",
        ),
        (
            json!({"protocol": "json", "on_open": [{"t": "{password}"}]}),
            "on_open[0] (at /t)",
        ),
        (
            json!({"protocol": "json", "subscribe": {"ch": "{feed"}}),
            "subscribe (at /ch)",
        ),
        (json!({"protocol": "json", "publish": "{in:x}"}), "publish"),
        (
            json!({"protocol": "json", "sequence": "ordered", "event": {"seq": "/n"}}),
            "sequence",
        ),
        (
            json!({"protocol": "json", "sequence": "increasing"}),
            "sequence",
        ),
        (json!({"protocol": "json", "ack": {"match": {}}}), "ack.id"),
        (
            json!({"protocol": "json", "keepalive": {"send": {}}}),
            "keepalive.every_ms",
        ),
        (
            json!({"protocol": "json", "answer": [{"send": {}}]}),
            "answer[0].match",
        ),
        (
            json!({"protocol": "json", "ignore": [{"/a~2": 1}]}),
            "ignore[0][\"/a~2\"]",
        ),
        (
            json!({"protocol": "json", "ready_timeout_ms": -1}),
            "ready_timeout_ms",
        ),
        (json!({"protocol": "raw", "on_open": []}), "on_open"),
        (json!({"protocol": "holdline.v1", "event": {}}), "event"),
        (
            json!({"protocol": "socket.io", "namespace": "chat"}),
            "namespace",
        ),
        (
            json!({"protocol": "socket.io", "event_seq": "seq"}),
            "event_seq",
        ),
        (json!({"protocol": "mqtt", "qos": 2}), "qos"),
        (json!({"protocol": "mqtt", "version": "4"}), "version"),
        (
            json!({"protocol": "graphql-ws", "feeds": {"a": {}}}),
            "feeds.a.query",
        ),
        (
            json!({"protocol": "graphql-ws", "feeds": {"a": {"query": "subscription { a }", "seq": "x"}}}),
            "feeds.a.seq",
        ),
        (
            json!({"protocol": "graphql-ws", "feeds": {"a": {"query": "subscription { a "}}}),
            "feeds.a.query",
        ),
        (
            json!({"protocol": "graphql-ws", "publish": {"query": "mutation A { a } mutation B { b }"}}),
            "publish.query",
        ),
    ];
    for (profile, key) in cases {
        let err = refused(profile.clone());
        assert_eq!(err.key, key, "{profile}: {err}");
        assert!(err.to_string().contains(key), "{err}");
    }
    assert_eq!(refused(json!([])).key, "");
    assert!(Profile::parse("{").unwrap_err().message.contains("JSON"));
}

#[test]
fn payload_auth_is_the_default_only_where_the_protocol_logs_in_itself() {
    for (name, auth) in [
        ("holdline.v1", Auth::Bearer),
        ("raw", Auth::Bearer),
        ("json", Auth::Bearer),
        ("socket.io", Auth::Payload),
        ("mqtt", Auth::Payload),
        ("graphql-ws", Auth::Payload),
    ] {
        assert_eq!(
            Profile::for_protocol(name).unwrap().common.auth,
            auth,
            "{name}"
        );
    }
}

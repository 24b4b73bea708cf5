//! The wire as a state machine: frames in, frames and items out, no socket.

use serde_json::{Value, json};

use super::*;
use crate::feed_url::FeedUrl;

const OPEN: &str =
    r#"0{"sid":"e","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":100}"#;

fn wire(profile: Value, saved: Option<SessionMark>) -> SocketIoWire {
    let (url, _) = FeedUrl::parse("ws://127.0.0.1:3000/").unwrap();
    let config = EngineConfig::new(url, Some(Token::new("tok")))
        .with_profile(Profile::load(&profile).unwrap());
    let WireProfile::SocketIo(rules) = &config.profile.wire else {
        panic!("not socket.io")
    };
    SocketIoWire::new(&config, &rules.clone(), saved)
}

fn feed(wire: &mut SocketIoWire, text: &str) -> Out {
    let mut out = Out::default();
    wire.on_frame(Frame::Text(text), &mut out);
    out
}

fn sent(out: &Out) -> Vec<String> {
    out.frames
        .iter()
        .map(|m| m.to_text().unwrap().to_owned())
        .collect()
}

/// Opens the wire and answers its CONNECT with `answer`.
fn connected(wire: &mut SocketIoWire, answer: &str) -> (Out, Out) {
    let mut opened = Out::default();
    wire.on_open(None, Instant::now(), &mut opened);
    let login = feed(wire, OPEN);
    (login, feed(wire, answer))
}

use crate::profile::WireProfile;

#[test]
fn connect_carries_the_token_and_the_history_a_redacted_copy() {
    let mut w = wire(json!({"protocol": "socket.io"}), None);
    let (login, ready) = connected(&mut w, r#"40{"sid":"s1","pid":"p1"}"#);
    assert_eq!(sent(&login), [r#"40{"token":"tok"}"#]);
    assert!(
        matches!(&login.items[0], Inbound::Sent { frame, .. } if frame == r#"40{"token":"<redacted>"}"#)
    );
    let Inbound::Ready(ready) = &ready.items[0] else {
        panic!("not ready: {:?}", ready.items)
    };
    assert_eq!(ready.session.as_deref(), Some("s1"));
    assert_eq!(
        ready.heartbeat,
        Some(Heartbeat::InProtocol(Duration::from_millis(500)))
    );
    assert_eq!(ready.max_frame_bytes, Some(100));
    assert_eq!(ready.continuity, Continuity::ByFeed);
}

#[test]
fn a_saved_session_goes_first_in_connect_and_the_payload_keys_win() {
    let saved = SessionMark {
        session: "p-old".into(),
        offset: "o-9".into(),
    };
    let mut w = wire(
        json!({"protocol": "socket.io", "namespace": "/feed", "connect": {"key": "{token}", "offset": "mine"}}),
        Some(saved),
    );
    let (login, ready) = connected(&mut w, r#"40/feed,{"sid":"s2","pid":"p-old"}"#);
    let payload = |frame: &str| -> Value {
        let json = frame.strip_prefix("40/feed,").expect("CONNECT to /feed");
        serde_json::from_str(json).unwrap()
    };
    assert_eq!(
        payload(&sent(&login)[0]),
        json!({"pid": "p-old", "offset": "mine", "key": "tok"})
    );
    let Inbound::Sent { frame, .. } = &login.items[0] else {
        panic!("not recorded")
    };
    assert_eq!(
        payload(frame),
        json!({"pid": "<redacted>", "offset": "mine", "key": "<redacted>"})
    );
    let Inbound::Ready(ready) = &ready.items[0] else {
        panic!("not ready")
    };
    assert_eq!(ready.continuity, Continuity::Resumed);
}

#[test]
fn a_session_not_honoured_is_lost_and_early_events_follow_the_answer() {
    let saved = SessionMark {
        session: "p-old".into(),
        offset: "o-1".into(),
    };
    let mut w = wire(json!({"protocol": "socket.io"}), Some(saved));
    let mut opened = Out::default();
    w.on_open(None, Instant::now(), &mut opened);
    feed(&mut w, OPEN);
    // Missed events of a recovered session come before the answer.
    let early = feed(&mut w, r#"42["tick",{"n":2},"o-2"]"#);
    assert!(early.items.is_empty(), "held until the answer");
    let answer = feed(&mut w, r#"40{"sid":"s","pid":"p-old"}"#);
    assert!(matches!(&answer.items[0], Inbound::Ready(r) if r.continuity == Continuity::Resumed));
    let Inbound::Event(event) = &answer.items[1] else {
        panic!("the early event follows the answer")
    };
    assert_eq!(event.data.get(), r#"{"n":2}"#);
    assert_eq!(
        event.session.as_deref().map(|m| m.offset.as_str()),
        Some("o-2")
    );

    let mut w = wire(
        json!({"protocol": "socket.io"}),
        Some(SessionMark {
            session: "p-old".into(),
            offset: "o-1".into(),
        }),
    );
    let (_, answer) = connected(&mut w, r#"40{"sid":"s","pid":"p-new"}"#);
    assert!(matches!(&answer.items[0], Inbound::Ready(r)
        if r.continuity == Continuity::Lost(DiscontinuityReason::NotRecovered)));
}

#[test]
fn the_offset_is_taken_only_while_recovery_is_on_and_never_from_an_ack_request() {
    let mut w = wire(json!({"protocol": "socket.io"}), None);
    connected(&mut w, r#"40{"sid":"s"}"#);
    let out = feed(&mut w, r#"42["msg","a","b"]"#);
    let Inbound::Event(event) = &out.items[0] else {
        panic!("no event")
    };
    assert_eq!(event.data.get(), r#"["a","b"]"#, "no pid: no offset");
    assert!(event.session.is_none());

    let mut w = wire(json!({"protocol": "socket.io"}), None);
    connected(&mut w, r#"40{"sid":"s","pid":"p"}"#);
    let out = feed(&mut w, r#"427["ask","x"]"#);
    assert_eq!(sent(&out), ["437[]"], "acknowledged on receipt");
    let Inbound::Event(event) = &out.items[0] else {
        panic!("no event")
    };
    assert_eq!(
        event.data.get(),
        r#""x""#,
        "an ack request carries no offset"
    );
    let out = feed(&mut w, r#"42["tick",{"n":1},"off-1"]"#);
    let Inbound::Event(event) = &out.items[0] else {
        panic!("no event")
    };
    assert_eq!(event.data.get(), r#"{"n":1}"#);
    assert_eq!(event.meta.as_ref().unwrap().get(), r#"{"event":"tick"}"#);
    assert_eq!(event.session.as_ref().unwrap().offset, "off-1");
}

#[test]
fn pings_are_answered_with_their_payload() {
    let mut w = wire(json!({"protocol": "socket.io"}), None);
    connected(&mut w, r#"40{"sid":"s"}"#);
    assert_eq!(sent(&feed(&mut w, "2")), ["3"]);
    assert_eq!(sent(&feed(&mut w, "2probe")), ["3probe"]);
}

#[test]
fn broken_frames_are_malformed_and_the_wire_goes_on() {
    let mut w = wire(json!({"protocol": "socket.io", "event_seq": "/n"}), None);
    connected(&mut w, r#"40{"sid":"s"}"#);
    for text in [
        "",
        "9",
        "4",
        "42{}",
        "42[1]",
        r#"42["tick",{"m":1}]"#,
        r#"42["tick","not an object"]"#,
        r#"45999999-["f"]"#,
    ] {
        let out = feed(&mut w, text);
        assert!(
            matches!(out.items.as_slice(), [Inbound::Malformed(_)]),
            "{text:?}: {:?}",
            out.items
        );
    }
    let mut out = Out::default();
    w.on_frame(Frame::Binary(&[1, 2, 3]), &mut out);
    assert!(
        matches!(out.items.as_slice(), [Inbound::Malformed(_)]),
        "an attachment nobody announced"
    );
    let out = feed(&mut w, r#"451-["f",{"_placeholder":true,"num":3}]"#);
    assert!(out.items.is_empty());
    let mut out = Out::default();
    w.on_frame(Frame::Binary(&[1]), &mut out);
    assert!(
        matches!(out.items.as_slice(), [Inbound::Malformed(_)]),
        "a placeholder without its attachment"
    );
    let out = feed(&mut w, r#"42["tick",{"n":4}]"#);
    assert!(
        matches!(&out.items[0], Inbound::Event(e) if e.seq == Some(4)),
        "and on it goes"
    );
}

#[test]
fn an_oversize_publish_is_refused_and_an_ack_settles_by_its_id() {
    let mut w = wire(json!({"protocol": "socket.io"}), None);
    connected(&mut w, r#"40{"sid":"s"}"#);
    let entry = |id: &str, data: &str| OutboxEntry {
        id: id.into(),
        feed: "chat".into(),
        data: RawValue::from_string(data.into()).unwrap(),
        queued_at_ms: 0,
    };
    let mut out = Out::default();
    w.publish(&entry("big", &format!("\"{}\"", "x".repeat(200))), &mut out);
    assert!(matches!(&out.items[0], Inbound::PublishRefused { code, .. } if code == "too_large"));
    assert!(out.frames.is_empty());
    let mut out = Out::default();
    w.publish(&entry("small", "1"), &mut out);
    assert_eq!(sent(&out), [r#"421["chat",1]"#]);
    let out = feed(&mut w, r#"431[{"ok":true}]"#);
    assert!(matches!(&out.items[0], Inbound::Ack { id, seq: None } if id == "small"));
    assert!(
        feed(&mut w, "431[]").items.is_empty(),
        "a repeated ack settles nothing"
    );
}

#[test]
fn disconnect_ends_the_session_and_connect_error_asks_for_a_login() {
    let mut w = wire(json!({"protocol": "socket.io"}), None);
    connected(&mut w, r#"40{"sid":"s","pid":"p"}"#);
    let out = feed(&mut w, "41");
    assert!(matches!(
        &out.items[0],
        Inbound::End(Cause::SessionEnded { .. })
    ));
    let mut w = wire(json!({"protocol": "socket.io"}), None);
    let mut opened = Out::default();
    w.on_open(None, Instant::now(), &mut opened);
    feed(&mut w, OPEN);
    let out = feed(
        &mut w,
        r#"44{"message":"unauthorized","data":{"reason":"bad token"}}"#,
    );
    assert!(
        matches!(&out.items[0], Inbound::End(Cause::LoginRefused { detail })
        if detail == r#"CONNECT_ERROR: unauthorized ({"reason":"bad token"})"#)
    );
}

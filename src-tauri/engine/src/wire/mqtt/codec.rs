//! MQTT packets on a WebSocket: framing and the two protocol versions.
//!
//! Packets travel in binary frames and may be split across frames or share
//! one (`Framer`). Each whole packet is decoded by `mqtt-proto` (its v3 or
//! v5 codec) into the few shapes a client acts on (`Incoming`), and the
//! packets a client sends are built here for either version.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use mqtt_proto::{Pid, Protocol, QoS, QosPid, TopicFilter, TopicName, v3, v5};

/// The protocol version a profile chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V311,
    V5,
}

/// Whole packets out of a byte stream that arrives in arbitrary pieces.
#[derive(Debug)]
pub(crate) struct Framer {
    buffered: BytesMut,
    max_packet_bytes: usize,
}

impl Framer {
    pub fn new(max_packet_bytes: usize) -> Self {
        Framer {
            buffered: BytesMut::new(),
            max_packet_bytes,
        }
    }

    pub fn clear(&mut self) {
        self.buffered.clear();
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffered.extend_from_slice(bytes);
    }

    /// Hands each whole packet in what came before and `bytes` to
    /// `packet`, and keeps the incomplete rest. The common case, a frame
    /// of whole packets and nothing left over, is read in place.
    pub fn feed(&mut self, bytes: &[u8], mut packet: impl FnMut(&[u8])) -> Result<(), String> {
        if self.buffered.is_empty() {
            let mut rest = bytes;
            while let Some(total) = packet_length(rest, self.max_packet_bytes)? {
                let (whole, tail) = rest.split_at(total);
                packet(whole);
                rest = tail;
            }
            self.buffered.extend_from_slice(rest);
            return Ok(());
        }
        self.push(bytes);
        while let Some(whole) = self.next_packet()? {
            packet(&whole);
        }
        Ok(())
    }

    /// The next whole packet, `None` until one is complete. A length that
    /// cannot be read or is over the limit is an error: the stream cannot
    /// be resynchronised after it.
    pub fn next_packet(&mut self) -> Result<Option<Bytes>, String> {
        match packet_length(&self.buffered, self.max_packet_bytes)? {
            Some(total) => Ok(Some(self.buffered.split_to(total).freeze())),
            None => Ok(None),
        }
    }
}

/// The length of the packet at the start of `bytes`, `None` while it is
/// incomplete.
fn packet_length(bytes: &[u8], max_packet_bytes: usize) -> Result<Option<usize>, String> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    if first >> 4 == 0 {
        return Err(format!(
            "packet type 0 (first byte {first:#04x}) is reserved"
        ));
    }
    let mut remaining: usize = 0;
    let mut header = 1;
    loop {
        let Some(&byte) = bytes.get(header) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << (7 * (header - 1));
        header += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if header > 4 {
            return Err("a remaining length longer than four bytes".into());
        }
    }
    let total = header + remaining;
    if total > max_packet_bytes {
        return Err(format!(
            "a packet of {total} bytes; at most {max_packet_bytes} are taken"
        ));
    }
    Ok((bytes.len() >= total).then_some(total))
}

/// What the client acts on, in either version.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    Connack {
        session_present: bool,
        /// 0 accepted; 3.1.1 return codes 1–5 or MQTT 5 reason codes.
        code: u8,
        reason: Option<String>,
        max_packet_bytes: Option<u32>,
    },
    Publish(Message),
    Puback {
        pid: u16,
        code: u8,
        reason: Option<String>,
    },
    /// Granted QoS per filter, or the failure code.
    Suback {
        pid: u16,
        granted: Vec<Result<u8, u8>>,
    },
    Unsuback,
    Pingresp,
    /// QoS 2 flow steps, which this client never asks for.
    QoS2Step {
        step: QoS2Step,
        pid: u16,
    },
    Disconnect {
        code: u8,
        reason: Option<String>,
    },
    /// A packet only a client sends, or AUTH.
    Unexpected(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QoS2Step {
    Pubrec,
    Pubrel,
    Pubcomp,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub topic: Arc<str>,
    pub qos: u8,
    pub pid: Option<u16>,
    pub retain: bool,
    pub payload: Bytes,
}

pub(crate) fn decode(version: Version, packet: &[u8]) -> Result<Incoming, String> {
    let show = |e: mqtt_proto::Error| e.to_string();
    match version {
        Version::V311 => {
            let packet = v3::Packet::decode(packet)
                .map_err(show)?
                .ok_or("an incomplete packet")?;
            Ok(from_v3(packet))
        }
        Version::V5 => {
            let packet = v5::Packet::decode(packet)
                .map_err(|e| e.to_string())?
                .ok_or("an incomplete packet")?;
            Ok(from_v5(packet))
        }
    }
}

fn qos_pid(qos_pid: QosPid) -> (u8, Option<u16>) {
    match qos_pid {
        QosPid::Level0 => (0, None),
        QosPid::Level1(pid) => (1, Some(pid.value())),
        QosPid::Level2(pid) => (2, Some(pid.value())),
    }
}

/// A PUBLISH as either version decodes it.
fn publish_in(topic: &str, qos_pid: QosPid, retain: bool, payload: Bytes) -> Incoming {
    let (qos, pid) = self::qos_pid(qos_pid);
    Incoming::Publish(Message {
        topic: Arc::from(topic),
        qos,
        pid,
        retain,
        payload,
    })
}

fn qos2(step: QoS2Step, pid: Pid) -> Incoming {
    Incoming::QoS2Step {
        step,
        pid: pid.value(),
    }
}

fn from_v3(packet: v3::Packet) -> Incoming {
    match packet {
        v3::Packet::Connack(c) => Incoming::Connack {
            session_present: c.session_present,
            code: c.code as u8,
            reason: None,
            max_packet_bytes: None,
        },
        v3::Packet::Publish(p) => publish_in(&p.topic_name, p.qos_pid, p.retain, p.payload),
        v3::Packet::Puback(pid) => Incoming::Puback {
            pid: pid.value(),
            code: 0,
            reason: None,
        },
        v3::Packet::Suback(s) => Incoming::Suback {
            pid: s.pid.value(),
            granted: s
                .topics
                .iter()
                .map(|code| match code {
                    v3::SubscribeReturnCode::MaxLevel0 => Ok(0),
                    v3::SubscribeReturnCode::MaxLevel1 => Ok(1),
                    v3::SubscribeReturnCode::MaxLevel2 => Ok(2),
                    v3::SubscribeReturnCode::Failure => Err(0x80),
                })
                .collect(),
        },
        v3::Packet::Unsuback(_) => Incoming::Unsuback,
        v3::Packet::Pingresp => Incoming::Pingresp,
        v3::Packet::Pubrec(pid) => qos2(QoS2Step::Pubrec, pid),
        v3::Packet::Pubrel(pid) => qos2(QoS2Step::Pubrel, pid),
        v3::Packet::Pubcomp(pid) => qos2(QoS2Step::Pubcomp, pid),
        v3::Packet::Connect(_) => Incoming::Unexpected("CONNECT"),
        v3::Packet::Subscribe(_) => Incoming::Unexpected("SUBSCRIBE"),
        v3::Packet::Unsubscribe(_) => Incoming::Unexpected("UNSUBSCRIBE"),
        v3::Packet::Pingreq => Incoming::Unexpected("PINGREQ"),
        v3::Packet::Disconnect => Incoming::Disconnect {
            code: 0,
            reason: None,
        },
    }
}

fn text(reason: Option<Arc<str>>) -> Option<String> {
    reason.map(|r| r.to_string())
}

fn from_v5(packet: v5::Packet) -> Incoming {
    match packet {
        v5::Packet::Connack(c) => Incoming::Connack {
            session_present: c.session_present,
            code: c.reason_code as u8,
            reason: text(c.properties.reason_string),
            max_packet_bytes: c.properties.max_packet_size,
        },
        v5::Packet::Publish(p) => publish_in(&p.topic_name, p.qos_pid, p.retain, p.payload),
        v5::Packet::Puback(p) => Incoming::Puback {
            pid: p.pid.value(),
            code: p.reason_code as u8,
            reason: text(p.properties.reason_string),
        },
        v5::Packet::Suback(s) => Incoming::Suback {
            pid: s.pid.value(),
            granted: s
                .topics
                .iter()
                .map(|code| match *code as u8 {
                    granted @ 0..=2 => Ok(granted),
                    failed => Err(failed),
                })
                .collect(),
        },
        v5::Packet::Unsuback(_) => Incoming::Unsuback,
        v5::Packet::Pingresp => Incoming::Pingresp,
        v5::Packet::Pubrec(p) => qos2(QoS2Step::Pubrec, p.pid),
        v5::Packet::Pubrel(p) => qos2(QoS2Step::Pubrel, p.pid),
        v5::Packet::Pubcomp(p) => qos2(QoS2Step::Pubcomp, p.pid),
        v5::Packet::Disconnect(d) => Incoming::Disconnect {
            code: d.reason_code as u8,
            reason: text(d.properties.reason_string),
        },
        v5::Packet::Connect(_) => Incoming::Unexpected("CONNECT"),
        v5::Packet::Subscribe(_) => Incoming::Unexpected("SUBSCRIBE"),
        v5::Packet::Unsubscribe(_) => Incoming::Unexpected("UNSUBSCRIBE"),
        v5::Packet::Pingreq => Incoming::Unexpected("PINGREQ"),
        v5::Packet::Auth(_) => Incoming::Unexpected("AUTH"),
    }
}

/// What the CONNECT says.
pub(crate) struct Login<'a> {
    pub client_id: &'a str,
    pub username: &'a str,
    pub password: Option<&'a str>,
    pub keepalive_s: u16,
    pub session_expiry_s: u32,
}

fn pid(value: u16) -> Result<Pid, String> {
    Pid::try_from(value).map_err(|e| e.to_string())
}

fn qos(level: u8) -> QoS {
    if level == 0 { QoS::Level0 } else { QoS::Level1 }
}

fn bytes(encoded: Result<mqtt_proto::VarBytes, impl ToString>) -> Result<Vec<u8>, String> {
    encoded
        .map(|b| b.as_ref().to_vec())
        .map_err(|e| e.to_string())
}

/// A persistent session: clean session / clean start off.
pub(crate) fn connect(version: Version, login: &Login<'_>) -> Result<Vec<u8>, String> {
    let client_id: Arc<str> = Arc::from(login.client_id);
    // 3.1.1 sends a password only with a username: the empty one.
    let username = Some(Arc::from(login.username));
    let password = login.password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
    match version {
        Version::V311 => bytes(
            v3::Packet::Connect(v3::Connect {
                protocol: Protocol::V311,
                clean_session: false,
                keep_alive: login.keepalive_s,
                client_id,
                last_will: None,
                username,
                password,
            })
            .encode(),
        ),
        Version::V5 => {
            let mut connect = v5::Connect::new(client_id, login.keepalive_s);
            connect.clean_start = false;
            connect.properties.session_expiry_interval = Some(login.session_expiry_s);
            connect.username = username;
            connect.password = password;
            bytes(v5::Packet::Connect(connect).encode())
        }
    }
}

fn filter(text: &str) -> Result<TopicFilter, String> {
    TopicFilter::try_from(text).map_err(|e| format!("{text:?}: {e}"))
}

pub(crate) fn subscribe(
    version: Version,
    id: u16,
    topic_filter: &str,
    level: u8,
) -> Result<Vec<u8>, String> {
    let (id, topic_filter) = (pid(id)?, filter(topic_filter)?);
    match version {
        Version::V311 => bytes(
            v3::Packet::Subscribe(v3::Subscribe::new(id, vec![(topic_filter, qos(level))]))
                .encode(),
        ),
        Version::V5 => {
            let options = v5::SubscriptionOptions::new(qos(level));
            bytes(
                v5::Packet::Subscribe(v5::Subscribe::new(id, vec![(topic_filter, options)]))
                    .encode(),
            )
        }
    }
}

pub(crate) fn unsubscribe(
    version: Version,
    id: u16,
    topic_filter: &str,
) -> Result<Vec<u8>, String> {
    let (id, topic_filter) = (pid(id)?, filter(topic_filter)?);
    match version {
        Version::V311 => {
            bytes(v3::Packet::Unsubscribe(v3::Unsubscribe::new(id, vec![topic_filter])).encode())
        }
        Version::V5 => {
            bytes(v5::Packet::Unsubscribe(v5::Unsubscribe::new(id, vec![topic_filter])).encode())
        }
    }
}

/// A QoS 1 PUBLISH; `dup` when it was sent on an earlier connection.
pub(crate) fn publish(
    version: Version,
    id: u16,
    topic: &str,
    payload: &[u8],
    dup: bool,
) -> Result<Vec<u8>, String> {
    let topic = TopicName::try_from(topic).map_err(|e| format!("{topic:?}: {e}"))?;
    let qos_pid = QosPid::Level1(pid(id)?);
    let payload = Bytes::copy_from_slice(payload);
    match version {
        Version::V311 => {
            let mut publish = v3::Publish::new(qos_pid, topic, payload);
            publish.dup = dup;
            bytes(v3::Packet::Publish(publish).encode())
        }
        Version::V5 => {
            let mut publish = v5::Publish::new(qos_pid, topic, payload);
            publish.dup = dup;
            bytes(v5::Packet::Publish(publish).encode())
        }
    }
}

pub(crate) fn puback(version: Version, id: u16) -> Result<Vec<u8>, String> {
    let id = pid(id)?;
    match version {
        Version::V311 => bytes(v3::Packet::Puback(id).encode()),
        Version::V5 => bytes(v5::Packet::Puback(v5::Puback::new_success(id)).encode()),
    }
}

pub(crate) fn pingreq() -> Vec<u8> {
    // The same two bytes in both versions.
    vec![0xc0, 0x00]
}

/// The steps of a QoS 2 flow this client answers but never starts: the
/// same four bytes in both versions (MQTT 5 leaves out a success code).
pub(crate) fn pubrec(id: u16) -> Vec<u8> {
    with_id(0x50, id)
}

pub(crate) fn pubrel(id: u16) -> Vec<u8> {
    with_id(0x62, id)
}

pub(crate) fn pubcomp(id: u16) -> Vec<u8> {
    with_id(0x70, id)
}

fn with_id(first: u8, id: u16) -> Vec<u8> {
    let [high, low] = id.to_be_bytes();
    vec![first, 0x02, high, low]
}

pub(crate) fn check_topic_filter(text: &str) -> Result<(), String> {
    filter(text).map(|_| ())
}

pub(crate) fn check_topic_name(text: &str) -> Result<(), String> {
    TopicName::try_from(text)
        .map(|_| ())
        .map_err(|e| format!("{text:?} is not a topic to publish to: {e}"))
}

/// Whether `topic` matches `filter` (MQTT 4.7): `+` is one level, `#` the
/// rest; a filter starting with a wildcard does not match a `$` topic.
pub(crate) fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        match part {
            "#" => return true,
            "+" => {
                if levels.next().is_none() {
                    return false;
                }
            }
            exact => {
                if levels.next() != Some(exact) {
                    return false;
                }
            }
        }
    }
    levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn publish_v3(topic: &str, payload: &[u8], id: Option<u16>) -> Vec<u8> {
        let qos_pid = match id {
            Some(id) => QosPid::Level1(Pid::try_from(id).unwrap()),
            None => QosPid::Level0,
        };
        let publish = v3::Publish::new(
            qos_pid,
            TopicName::try_from(topic).unwrap(),
            Bytes::copy_from_slice(payload),
        );
        v3::Packet::Publish(publish)
            .encode()
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn all_packets(framer: &mut Framer) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(packet) = framer.next_packet().unwrap() {
            out.push(packet);
        }
        out
    }

    proptest! {
        /// Any split of a valid packet stream into frames, and any number
        /// of packets sharing one, decodes to the same packets in order.
        #[test]
        fn any_split_of_a_packet_stream_decodes_to_the_same_packets(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..12),
            cuts in proptest::collection::vec(0usize..4000, 0..20),
        ) {
            let packets: Vec<Vec<u8>> = payloads
                .iter()
                .enumerate()
                .map(|(i, p)| publish_v3(&format!("t/{i}"), p, Some(i as u16 + 1)))
                .collect();
            let stream: Vec<u8> = packets.concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut framer = Framer::new(1 << 20);
            let mut seen = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                framer.push(&stream[from..cut]);
                from = cut;
                seen.extend(all_packets(&mut framer));
            }
            prop_assert_eq!(seen.len(), packets.len());
            for (i, (seen, sent)) in seen.iter().zip(&packets).enumerate() {
                prop_assert_eq!(&seen[..], &sent[..]);
                let Incoming::Publish(message) = decode(Version::V311, seen).unwrap() else {
                    panic!("not a PUBLISH");
                };
                prop_assert_eq!(&*message.topic, format!("t/{i}"));
                prop_assert_eq!(&message.payload[..], &payloads[i][..]);
            }
        }
    }

    #[test]
    fn a_length_over_the_limit_or_too_long_is_an_error_not_a_wait() {
        let mut framer = Framer::new(64);
        framer.push(&publish_v3("a", &[0; 100], None));
        assert!(framer.next_packet().unwrap_err().contains("at most 64"));
        let mut framer = Framer::new(1 << 20);
        framer.push(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(framer.next_packet().is_err());
        let mut framer = Framer::new(1 << 20);
        framer.push(&[0x00, 0x00]);
        assert!(framer.next_packet().is_err(), "type 0 is reserved");
        let mut framer = Framer::new(1 << 20);
        framer.push(&[0x30]);
        assert_eq!(framer.next_packet(), Ok(None), "a lone first byte waits");
    }

    #[test]
    fn both_versions_round_trip_what_the_client_sends_and_reads() {
        for version in [Version::V311, Version::V5] {
            let login = Login {
                client_id: "holdline1",
                username: "",
                password: Some("pw"),
                keepalive_s: 30,
                session_expiry_s: 3600,
            };
            let connect = connect(version, &login).unwrap();
            assert_eq!(connect[0] >> 4, 1, "CONNECT");
            let publish = publish(version, 7, "a/b", br#"{"x":1}"#, true).unwrap();
            let Incoming::Publish(message) = decode(version, &publish).unwrap() else {
                panic!("not a PUBLISH")
            };
            assert_eq!(
                (&*message.topic, message.qos, message.pid),
                ("a/b", 1, Some(7))
            );
            assert_eq!(publish[0] & 0x08, 0x08, "DUP set");
            assert_eq!(puback(version, 7).unwrap()[0], 0x40);
            assert!(subscribe(version, 1, "a/+/#", 1).is_ok());
            assert!(subscribe(version, 1, "a/#/b", 1).is_err());
            assert!(unsubscribe(version, 2, "a/+").is_ok());
        }
        assert_eq!(
            decode(Version::V311, &[0x20, 0x02, 0x01, 0x04]).unwrap(),
            Incoming::Connack {
                session_present: true,
                code: 4,
                reason: None,
                max_packet_bytes: None,
            }
        );
        assert_eq!(
            decode(Version::V5, &[0x20, 0x03, 0x00, 0x87, 0x00]).unwrap(),
            Incoming::Connack {
                session_present: false,
                code: 0x87,
                reason: None,
                max_packet_bytes: None,
            }
        );
    }

    #[test]
    fn topics_match_filters_as_mqtt_says() {
        for (filter, topic, matches) in [
            ("a/b", "a/b", true),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/+", "/x", true),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("a/b", "a/c", false),
        ] {
            assert_eq!(topic_matches(filter, topic), matches, "{filter} {topic}");
        }
        assert!(check_topic_filter("a/#").is_ok());
        assert!(check_topic_filter("a#").is_err());
        assert!(check_topic_name("a/+").is_err());
    }
}

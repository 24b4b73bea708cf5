//! How the app shows a feed's binary payloads (`{"hex"}` from MQTT,
//! Socket.IO attachments, binary frames): detected as MessagePack or CBOR
//! unless the user chose a decoder for the feed (protobuf with their own
//! `.proto`, or `none` to keep the hex). The choice is kept per server and
//! feed in the settings; what the record keeps is the payload as it came.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use holdline_decode::{DecodedEvent, Decoder};
use holdline_storage::RecordedItem;
use serde_json::value::RawValue;

use crate::dto::UiItem;
use crate::error::{AppError, AppResult};

/// The setting that keeps a feed's payloads as hex.
pub const NONE: &str = "none";

/// The active server's decoders, by feed; shared with its delivery pump.
#[derive(Clone, Default)]
pub struct FeedDecoders {
    chosen: Arc<RwLock<HashMap<String, Option<Decoder>>>>,
}

/// A decoder setting as the user wrote it, checked (a protobuf file is
/// read and compiled now, so a bad one is refused here, not per event).
pub fn parse(setting: &str) -> AppResult<Option<Decoder>> {
    match setting.trim() {
        NONE => Ok(None),
        setting => Decoder::parse(setting)
            .map(Some)
            .map_err(|e| AppError::invalid(e.to_string())),
    }
}

impl FeedDecoders {
    /// Takes a server's saved settings; one that no longer parses (a
    /// `.proto` file moved away) falls back to detection and is reported.
    pub fn load(&self, saved: &BTreeMap<String, String>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut chosen = HashMap::new();
        for (feed, setting) in saved {
            match parse(setting) {
                Ok(decoder) => {
                    chosen.insert(feed.clone(), decoder);
                }
                Err(err) => problems.push(format!("feed {feed}: {err}")),
            }
        }
        *self.chosen.write().unwrap_or_else(|p| p.into_inner()) = chosen;
        problems
    }

    pub fn set(&self, feed: &str, decoder: Option<Decoder>) {
        self.chosen
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(feed.to_owned(), decoder);
    }

    pub fn forget(&self, feed: &str) {
        self.chosen
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(feed);
    }

    /// How `feed`'s payload reads: `None` for JSON data, or for a feed
    /// whose payloads stay hex.
    fn decode(&self, feed: &str, data: &RawValue, meta: Option<&RawValue>) -> Option<DecodedEvent> {
        let chosen = self.chosen.read().unwrap_or_else(|p| p.into_inner());
        match chosen.get(feed) {
            Some(None) => None,
            Some(Some(decoder)) => holdline_decode::decode_event(decoder, data, meta),
            None => holdline_decode::decode_event(&Decoder::Detect, data, meta),
        }
    }

    /// `item` as the UI shows it: an event's binary payload decoded, with
    /// the format (or why not) in its meta.
    pub fn show(&self, item: UiItem) -> UiItem {
        let UiItem::Event {
            feed,
            seq,
            epoch,
            ts,
            data,
            meta,
        } = item
        else {
            return item;
        };
        let (data, meta) = match self.decode(&feed, &data, meta.as_deref()) {
            Some(DecodedEvent {
                data: decoded,
                meta: facts,
            }) => (decoded.unwrap_or(data), Some(facts)),
            None => (data, meta),
        };
        UiItem::Event {
            feed,
            seq,
            epoch,
            ts,
            data,
            meta,
        }
    }

    /// A recorded event read as the live view reads it: the record keeps
    /// the payload as it came.
    pub fn show_recorded(&self, item: &mut RecordedItem) {
        if item.kind != "event" {
            return;
        }
        if let Some(DecodedEvent { data, meta }) =
            self.decode(&item.feed, &item.data, item.meta.as_deref())
        {
            item.meta = Some(meta);
            if let Some(decoded) = data {
                item.data = decoded;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(feed: &str, data: &str) -> UiItem {
        UiItem::Event {
            feed: feed.into(),
            seq: Some(1),
            epoch: None,
            ts: None,
            data: RawValue::from_string(data.into()).unwrap(),
            meta: Some(RawValue::from_string(r#"{"topic":"t"}"#.into()).unwrap()),
        }
    }

    fn shown(item: UiItem) -> (String, String) {
        let UiItem::Event { data, meta, .. } = item else {
            panic!("not an event")
        };
        (
            data.get().to_owned(),
            meta.map(|m| m.get().to_owned()).unwrap_or_default(),
        )
    }

    // MessagePack's {"a": 1}, and a CBOR map {"a": 1}.
    const MSGPACK: &str = r#"{"hex":"81a16101"}"#;
    const CBOR: &str = r#"{"hex":"a1616101"}"#;

    #[test]
    fn payloads_are_detected_unless_a_feed_chose_otherwise() {
        let decoders = FeedDecoders::default();
        assert_eq!(
            shown(decoders.show(event("f", MSGPACK))),
            (
                r#"{"a":1}"#.into(),
                r#"{"decoded":"msgpack","topic":"t"}"#.into()
            )
        );
        assert_eq!(shown(decoders.show(event("f", CBOR))).0, r#"{"a":1}"#);
        // JSON stays as it is, meta and all.
        assert_eq!(
            shown(decoders.show(event("f", r#"{"a":2}"#))),
            (r#"{"a":2}"#.into(), r#"{"topic":"t"}"#.into())
        );
        // `none` keeps the hex; a chosen format that does not read it says why.
        decoders.set("raw", parse(NONE).unwrap());
        assert_eq!(shown(decoders.show(event("raw", MSGPACK))).0, MSGPACK);
        decoders.set("c", parse("cbor").unwrap());
        let (data, meta) = shown(decoders.show(event("c", MSGPACK)));
        assert_eq!(data, MSGPACK);
        assert!(meta.contains("decode_error"), "{meta}");
        decoders.forget("c");
        assert_eq!(shown(decoders.show(event("c", MSGPACK))).0, r#"{"a":1}"#);
    }

    #[test]
    fn a_bad_setting_is_refused_and_a_saved_one_that_no_longer_loads_is_reported() {
        assert!(
            parse("yaml")
                .unwrap_err()
                .to_string()
                .contains("unknown decoder")
        );
        let decoders = FeedDecoders::default();
        let saved = BTreeMap::from([
            ("a".to_owned(), "msgpack".to_owned()),
            ("b".to_owned(), "protobuf:/nonexistent.proto:x.Y".to_owned()),
        ]);
        let problems = decoders.load(&saved);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("feed b"), "{problems:?}");
    }
}

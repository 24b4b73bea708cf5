//! Any sequence of events, subscribe answers (with gaps and epoch changes)
//! through one feed's sequencer: deliveries within an epoch are strictly
//! increasing, a gap marker covers exactly the range after the cursor, and
//! the buffer never exceeds its window.
#![no_main]

use holdline_engine::sequencer::{FeedSequencer, StartFrom};
use holdline_engine::Delivery;
use holdline_protocol::{Event, GapRange, Subscribed};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

const WINDOW: usize = 16;

fuzz_target!(|data: &[u8]| {
    let now = tokio::time::Instant::now();
    let mut seq = FeedSequencer::new("f".into(), None, StartFrom::Beginning, WINDOW);
    seq.subscribe_position();
    let mut out = Vec::new();
    let first = Subscribed { id: "s".into(), feed: "f".into(), epoch: "e0".into(), head: 0, replay_from: None, gap: None };
    seq.on_subscribed(&first, &mut out);
    let mut last = 0u64;
    let mut epoch = String::from("e0");
    for chunk in data.chunks(3) {
        let op = chunk[0] % 8;
        let a = *chunk.get(1).unwrap_or(&0) as u64;
        let b = *chunk.get(2).unwrap_or(&0) as u64;
        out.clear();
        if op == 0 {
            // A subscribe answer: maybe a new epoch, maybe a gap.
            let new_epoch = if a % 4 == 0 { format!("e{b}") } else { epoch.clone() };
            let gap = (b % 3 == 0).then(|| GapRange { from: 1 + a % 8, to: 1 + a % 8 + b % 8 });
            let head = 300;
            seq.subscribe_position();
            let sub = Subscribed { id: "s".into(), feed: "f".into(), epoch: new_epoch.clone(), head, replay_from: None, gap };
            seq.on_subscribed(&sub, &mut out);
        } else {
            let n = (a << 8 | b) % 300 + 1;
            let event = Event { feed: "f".into(), seq: n, data: RawValue::from_string("0".into()).unwrap(), ts: 0 };
            seq.on_event(event, now, &mut out);
        }
        for delivery in &out {
            match delivery {
                Delivery::Reset { epoch: e, .. } => {
                    epoch = e.to_string();
                    last = 0;
                }
                Delivery::Gap { from, to, .. } => {
                    assert_eq!(*from, last + 1, "a gap must start right after the cursor");
                    assert!(to >= from);
                    last = *to;
                }
                Delivery::Event(e) => {
                    assert_eq!(e.seq, last + 1, "events must come in order, once");
                    assert_eq!(&*e.epoch, epoch.as_str());
                    last = e.seq;
                }
                Delivery::Raw(_) => unreachable!(),
            }
        }
        assert!(seq.buffered() <= WINDOW);
        assert_eq!(seq.last_delivered(), last);
    }
});

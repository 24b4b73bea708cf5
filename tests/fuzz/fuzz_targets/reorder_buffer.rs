//! Any sequence of events, subscribe answers (with gaps and epoch changes)
//! through one feed's sequencer: deliveries within an epoch are strictly
//! increasing, a gap marker covers exactly the range after the cursor, and
//! the buffer never exceeds its window.
#![no_main]

use holdline_engine::sequencer::{FeedSequencer, StartFrom};
use holdline_engine::wire::{FeedRule, HoleRule, Numbering, WireEvent};
use holdline_engine::Delivery;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

const WINDOW: usize = 16;

fuzz_target!(|data: &[u8]| {
    let now = tokio::time::Instant::now();
    let rule = FeedRule { numbering: Numbering::Contiguous, holes: HoleRule::AskServer };
    let mut seq = FeedSequencer::new("f".into(), None, StartFrom::Beginning, WINDOW, rule);
    seq.subscribe_position();
    let mut out = Vec::new();
    seq.on_subscribed("e0", 0, None, &mut out);
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
            let gap = (b % 3 == 0).then(|| (1 + a % 8, 1 + a % 8 + b % 8));
            let head = 300;
            seq.subscribe_position();
            seq.on_subscribed(&new_epoch, head, gap, &mut out);
        } else {
            let n = (a << 8 | b) % 300 + 1;
            let event = WireEvent {
                feed: Some("f".into()),
                seq: Some(n),
                epoch: Some(epoch.as_str().into()),
                ts: None,
                data: RawValue::from_string("0".into()).unwrap(),
                meta: None,
                session: None,
                receipt: None,
            };
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
                    let n = e.seq.expect("a numbered feed");
                    assert_eq!(n, last + 1, "events must come in order, once");
                    assert_eq!(e.epoch.as_deref(), Some(epoch.as_str()));
                    last = n;
                }
                Delivery::Discontinuity { .. } | Delivery::Raw(_) => unreachable!(),
            }
        }
        assert!(seq.buffered() <= WINDOW);
        assert_eq!(seq.last_delivered(), Some(last));
    }
});

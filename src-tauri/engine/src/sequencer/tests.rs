use proptest::prelude::*;
use serde_json::value::RawValue;

use super::*;

const ASK_SERVER: FeedRule = FeedRule {
    numbering: Numbering::Contiguous,
    holes: HoleRule::AskServer,
};

fn inferred(replay: bool) -> FeedRule {
    FeedRule {
        numbering: Numbering::Contiguous,
        holes: HoleRule::Infer { replay },
    }
}

fn event(seq: u64) -> WireEvent {
    WireEvent {
        feed: Some("f".to_owned()),
        seq: Some(seq),
        epoch: None,
        ts: Some(0),
        data: RawValue::from_string(seq.to_string()).unwrap(),
        meta: None,
        session: None,
        receipt: None,
    }
}

fn in_epoch(seq: u64, epoch: &str) -> WireEvent {
    WireEvent {
        epoch: Some(epoch.into()),
        ..event(seq)
    }
}

fn seqs(out: &[Delivery]) -> Vec<u64> {
    out.iter()
        .filter_map(|d| match d {
            Delivery::Event(e) => e.seq,
            _ => None,
        })
        .collect()
}

fn gaps(out: &[Delivery]) -> Vec<(u64, u64, bool)> {
    out.iter()
        .filter_map(|d| match d {
            Delivery::Gap {
                from, to, inferred, ..
            } => Some((*from, *to, *inferred)),
            _ => None,
        })
        .collect()
}

fn from_start(window: usize) -> FeedSequencer {
    let mut s = FeedSequencer::new("f".into(), None, StartFrom::Beginning, window, ASK_SERVER);
    assert_eq!(s.subscribe_position().since, Some(0));
    let mut out = Vec::new();
    s.on_subscribed("e1", 0, None, &mut out);
    assert!(out.is_empty(), "a first subscription has no reset marker");
    s
}

#[test]
fn in_order_events_flow_and_duplicates_drop() {
    let mut s = from_start(16);
    let mut out = Vec::new();
    let now = Instant::now();
    for seq in [1, 2, 2, 1, 3] {
        s.on_event(event(seq), now, &mut out);
    }
    assert_eq!(seqs(&out), [1, 2, 3]);
    assert_eq!(s.stats().duplicates, 2);
}

#[test]
fn a_hole_holds_later_events_until_it_fills() {
    let mut s = from_start(16);
    let mut out = Vec::new();
    let now = Instant::now();
    assert_eq!(s.on_event(event(2), now, &mut out), Accepted::Buffered);
    assert_eq!(s.on_event(event(3), now, &mut out), Accepted::Buffered);
    assert!(out.is_empty());
    assert_eq!(
        s.hole_deadline(Duration::from_secs(1)),
        Some(now + Duration::from_secs(1))
    );
    assert_eq!(
        s.on_event(event(1), now, &mut out),
        Accepted::Delivered { released: 2 }
    );
    assert_eq!(seqs(&out), [1, 2, 3]);
    assert_eq!(s.hole_deadline(Duration::from_secs(1)), None);
}

#[test]
fn an_event_past_the_window_asks_for_a_resubscribe() {
    let mut s = from_start(4);
    let mut out = Vec::new();
    assert_eq!(
        s.on_event(event(6), Instant::now(), &mut out),
        Accepted::TooFarAhead
    );
    assert_eq!(s.buffered(), 0);
}

#[test]
fn a_server_gap_becomes_one_marker_and_releases_what_follows() {
    let mut s = from_start(16);
    let mut out = Vec::new();
    let now = Instant::now();
    s.on_event(event(1), now, &mut out);
    s.on_event(event(7), now, &mut out);
    assert_eq!(
        s.subscribe_position(),
        Position {
            since: Some(1),
            epoch: Some("e1".into())
        }
    );
    out.clear();
    s.on_subscribed("e1", 9, Some((2, 6)), &mut out);
    assert_eq!(gaps(&out), [(2, 6, false)]);
    assert_eq!(seqs(&out), [7]);
    assert_eq!(s.last_delivered(), Some(7));
    assert_eq!(
        s.on_hole_timeout(now, &mut out),
        HoleAction::Resubscribe,
        "holdline.v1 never infers a gap"
    );
}

#[test]
fn a_new_epoch_resets_then_marks_the_gap() {
    let cursor = Cursor::new(Some("old"), 40);
    let mut s = FeedSequencer::new("f".into(), Some(cursor), StartFrom::Live, 16, ASK_SERVER);
    assert_eq!(s.subscribe_position().since, Some(40));
    let mut out = Vec::new();
    s.on_subscribed("new", 10, Some((1, 4)), &mut out);
    assert!(matches!(&out[0], Delivery::Reset { epoch, .. } if &**epoch == "new"));
    assert_eq!(gaps(&out), [(1, 4, false)]);
    out.clear();
    s.on_event(event(5), Instant::now(), &mut out);
    assert_eq!(seqs(&out), [5]);
    assert_eq!(s.stats().resets, 1);
}

#[test]
fn a_gap_that_starts_past_the_cursor_still_marks_from_the_cursor() {
    let mut s = from_start(16);
    let mut out = Vec::new();
    s.on_event(event(1), Instant::now(), &mut out);
    out.clear();
    s.subscribe_position();
    s.on_subscribed("e1", 9, Some((5, 7)), &mut out);
    assert_eq!(gaps(&out), [(2, 7, false)]);
}

#[test]
fn live_only_starts_after_the_head() {
    let mut s = FeedSequencer::new("f".into(), None, StartFrom::Live, 16, ASK_SERVER);
    assert_eq!(s.subscribe_position(), Position::default());
    let mut out = Vec::new();
    assert_eq!(
        s.on_event(event(3), Instant::now(), &mut out),
        Accepted::Duplicate,
        "nothing is placed before the server's answer"
    );
    s.on_subscribed("e", 41, None, &mut out);
    assert!(out.is_empty());
    s.on_event(event(42), Instant::now(), &mut out);
    assert_eq!(seqs(&out), [42]);
}

#[test]
fn an_inferred_feed_starts_at_its_first_event_without_a_cursor() {
    let mut s = FeedSequencer::new("f".into(), None, StartFrom::Live, 16, inferred(false));
    assert_eq!(s.subscribe_position().since, None);
    let mut out = Vec::new();
    let now = Instant::now();
    s.on_event(event(57), now, &mut out);
    s.on_event(event(58), now, &mut out);
    assert_eq!(seqs(&out), [57, 58]);
    assert!(gaps(&out).is_empty());
    assert_eq!(s.subscribe_position().since, Some(58));
}

#[test]
fn after_a_lost_session_a_numbered_feed_starts_again_at_its_first_event() {
    let mut s = FeedSequencer::new("f".into(), None, StartFrom::Beginning, 16, inferred(false));
    let mut out = Vec::new();
    let now = Instant::now();
    for seq in 1..=5 {
        s.on_event(event(seq), now, &mut out);
    }
    s.on_discontinuity(DiscontinuityReason::NotRecovered, &mut out);
    // The restarted server counts from 1 again: nothing is taken for a
    // repeat, and no gap is made up.
    s.on_event(event(1), now, &mut out);
    s.on_event(event(2), now, &mut out);
    assert_eq!(seqs(&out), [1, 2, 3, 4, 5, 1, 2]);
    assert!(gaps(&out).is_empty());
    assert!(matches!(out[5], Delivery::Discontinuity { .. }));
}

#[test]
fn from_the_start_an_inferred_feed_expects_seq_1() {
    let mut s = FeedSequencer::new("f".into(), None, StartFrom::Beginning, 16, inferred(false));
    assert_eq!(s.subscribe_position().since, Some(0));
    let mut out = Vec::new();
    assert_eq!(
        s.on_event(event(2), Instant::now(), &mut out),
        Accepted::Buffered
    );
}

#[test]
fn a_replayable_hole_is_asked_for_once_then_inferred_for_exactly_the_missing_range() {
    let cursor = Cursor::new(None, 10);
    let mut s = FeedSequencer::new(
        "f".into(),
        Some(cursor),
        StartFrom::Live,
        16,
        inferred(true),
    );
    let mut out = Vec::new();
    let t0 = Instant::now();
    s.on_event(event(14), t0, &mut out);
    s.on_event(event(15), t0, &mut out);
    assert!(out.is_empty());
    let t1 = t0 + Duration::from_secs(2);
    assert_eq!(s.on_hole_timeout(t1, &mut out), HoleAction::Resubscribe);
    assert!(out.is_empty());
    assert_eq!(
        s.hole_deadline(Duration::from_secs(2)),
        Some(t1 + Duration::from_secs(2))
    );
    // The replay fills part of it: 11 arrives, 12..13 never do.
    s.on_event(event(11), t1, &mut out);
    assert_eq!(seqs(&out), [11]);
    out.clear();
    assert_eq!(s.on_hole_timeout(t1, &mut out), HoleAction::Settled);
    assert_eq!(gaps(&out), [(12, 13, true)]);
    assert_eq!(seqs(&out), [14, 15]);
    assert_eq!(s.hole_deadline(Duration::from_secs(2)), None);
}

#[test]
fn without_replay_a_hole_is_inferred_at_its_first_timeout() {
    let cursor = Cursor::new(None, 1);
    let mut s = FeedSequencer::new(
        "f".into(),
        Some(cursor),
        StartFrom::Live,
        16,
        inferred(false),
    );
    let mut out = Vec::new();
    let now = Instant::now();
    s.on_event(event(4), now, &mut out);
    s.on_event(event(7), now, &mut out);
    assert_eq!(s.on_hole_timeout(now, &mut out), HoleAction::Settled);
    assert_eq!(gaps(&out), [(2, 3, true)]);
    assert_eq!(seqs(&out), [4]);
    assert!(
        s.hole_deadline(Duration::from_secs(1)).is_some(),
        "5..6 still open"
    );
    out.clear();
    assert_eq!(s.on_hole_timeout(now, &mut out), HoleAction::Settled);
    assert_eq!(gaps(&out), [(5, 6, true)]);
    assert_eq!(seqs(&out), [7]);
}

#[test]
fn past_the_window_without_replay_the_hole_is_declared_at_once_and_nothing_buffered_is_lost() {
    let cursor = Cursor::new(None, 0);
    let mut s = FeedSequencer::new(
        "f".into(),
        Some(cursor),
        StartFrom::Live,
        4,
        inferred(false),
    );
    let mut out = Vec::new();
    let now = Instant::now();
    s.on_event(event(3), now, &mut out);
    s.on_event(event(20), now, &mut out);
    assert_eq!(gaps(&out), [(1, 2, true), (4, 19, true)]);
    assert_eq!(seqs(&out), [3, 20]);
}

#[test]
fn an_epoch_change_in_the_events_resets_the_feed() {
    let cursor = Cursor::new(Some("run-1"), 30);
    let mut s = FeedSequencer::new(
        "f".into(),
        Some(cursor),
        StartFrom::Live,
        16,
        inferred(false),
    );
    let mut out = Vec::new();
    let now = Instant::now();
    s.on_event(in_epoch(31, "run-1"), now, &mut out);
    s.on_event(in_epoch(1, "run-2"), now, &mut out);
    assert!(matches!(&out[1], Delivery::Reset { epoch, .. } if &**epoch == "run-2"));
    assert_eq!(seqs(&out), [31, 1]);
    assert_eq!(out[2].cursor().unwrap().1, Cursor::new(Some("run-2"), 1));
}

#[test]
fn increasing_numbering_drops_late_ones_and_never_waits() {
    let rule = FeedRule {
        numbering: Numbering::Increasing,
        holes: HoleRule::Infer { replay: false },
    };
    let mut s = FeedSequencer::new("f".into(), None, StartFrom::Live, 16, rule);
    let mut out = Vec::new();
    let now = Instant::now();
    for seq in [5, 9, 7, 9, 12] {
        s.on_event(event(seq), now, &mut out);
    }
    assert_eq!(seqs(&out), [5, 9, 12]);
    assert!(gaps(&out).is_empty());
    assert_eq!(s.stats().duplicates, 2);
}

#[test]
fn unnumbered_events_flow_in_arrival_order_and_move_no_cursor() {
    let rule = FeedRule {
        numbering: Numbering::Unnumbered,
        holes: HoleRule::Infer { replay: false },
    };
    let mut s = FeedSequencer::new("f".into(), None, StartFrom::Live, 16, rule);
    let mut out = Vec::new();
    let mut e = event(0);
    e.seq = None;
    s.on_event(e.clone(), Instant::now(), &mut out);
    s.on_event(e, Instant::now(), &mut out);
    s.on_discontinuity(DiscontinuityReason::Reconnected, &mut out);
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|d| d.cursor().is_none()));
    assert!(matches!(
        out[2],
        Delivery::Discontinuity {
            reason: DiscontinuityReason::Reconnected,
            ..
        }
    ));
}

proptest! {
    /// Any permutation of 1..=n, with duplicates sprinkled in, comes out
    /// as exactly 1..=n when the window covers the disorder.
    #[test]
    fn any_permutation_with_duplicates_comes_out_in_order(
        order in (1u64..200).prop_flat_map(|n| {
            let seqs: Vec<u64> = (1..=n).collect();
            (Just(n), Just(seqs).prop_shuffle(), proptest::collection::vec(1..=n, 0..50))
        })
    ) {
        let (n, shuffled, dups) = order;
        let mut input = shuffled;
        for (i, d) in dups.into_iter().enumerate() {
            let at = (i * 7) % (input.len() + 1);
            input.insert(at, d);
        }
        let mut s = from_start(n as usize);
        let mut out = Vec::new();
        let now = Instant::now();
        for seq in &input {
            s.on_event(event(*seq), now, &mut out);
        }
        prop_assert_eq!(seqs(&out), (1..=n).collect::<Vec<_>>());
        prop_assert_eq!(s.stats().duplicates, input.len() as u64 - n);
        prop_assert_eq!(s.buffered(), 0);
    }

    /// With a window smaller than the disorder, nothing is delivered out
    /// of order or twice, and whatever is missing is still ahead.
    #[test]
    fn a_small_window_never_breaks_order(
        input in proptest::collection::vec(1u64..60, 0..200),
        window in 1usize..8,
    ) {
        let mut s = from_start(window);
        let mut out = Vec::new();
        let now = Instant::now();
        for seq in input {
            s.on_event(event(seq), now, &mut out);
            prop_assert!(s.buffered() <= window);
        }
        let got = seqs(&out);
        prop_assert_eq!(got.clone(), (1..=got.len() as u64).collect::<Vec<_>>());
    }

    /// Inferred feeds, whatever arrives and whenever holes time out:
    /// every seq from the first on is delivered or inside exactly one gap
    /// marker, in strictly increasing order, never twice.
    #[test]
    fn inferred_feeds_account_for_every_seq_exactly_once(
        input in proptest::collection::vec((1u64..80, any::<bool>()), 1..200),
        window in 1usize..16,
        replay in any::<bool>(),
    ) {
        let cursor = Cursor::new(None, 0);
        let mut s = FeedSequencer::new("f".into(), Some(cursor), StartFrom::Live, window, inferred(replay));
        let mut out = Vec::new();
        let now = Instant::now();
        for (seq, timeout) in input {
            s.on_event(event(seq), now, &mut out);
            if timeout {
                s.on_hole_timeout(now, &mut out);
            }
        }
        let mut next = 1;
        for delivery in &out {
            match delivery {
                Delivery::Event(e) => {
                    prop_assert_eq!(e.seq, Some(next));
                    next += 1;
                }
                Delivery::Gap { from, to, inferred, .. } => {
                    prop_assert!(*inferred);
                    prop_assert_eq!(*from, next);
                    prop_assert!(to >= from);
                    next = to + 1;
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}

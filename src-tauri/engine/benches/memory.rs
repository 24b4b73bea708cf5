//! Engine memory: per subscribed feed and per buffered (out-of-order)
//! event, counted by a wrapping allocator.
//!
//!   cargo bench -p holdline-engine --bench memory

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use holdline_engine::sequencer::{FeedSequencer, StartFrom};
use holdline_engine::wire::{FeedRule, HoleRule, Numbering, WireEvent};
use holdline_engine::{Engine, EngineConfig, FeedUrl, Stores};
use serde_json::value::RawValue;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged; the
// counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let before = live();
        let (url, _) = FeedUrl::parse("ws://127.0.0.1:9/").unwrap();
        let (engine, _deliveries) = Engine::start(EngineConfig::new(url, None), Stores::default()).unwrap();
        engine.snapshot().await.unwrap();
        let idle = live() - before;
        let feeds = 10_000;
        let before_feeds = live();
        for i in 0..feeds {
            engine.subscribe(&format!("feed.{i:05}"), StartFrom::Live).await.unwrap();
        }
        engine.snapshot().await.unwrap();
        let per_feed = (live() - before_feeds) as f64 / feeds as f64;

        // Buffered events: everything after a missing seq 1 waits.
        let data = r#"{"px":123.25,"sym":"HOLD","q":42}"#;
        let rule = FeedRule { numbering: Numbering::Contiguous, holes: HoleRule::AskServer };
        let mut sequencer = FeedSequencer::new("f".into(), None, StartFrom::Beginning, 100_000, rule);
        sequencer.subscribe_position();
        let mut out = Vec::new();
        sequencer.on_subscribed("e", 0, None, &mut out);
        let events = 50_000u64;
        let before_events = live();
        let now = tokio::time::Instant::now();
        for seq in 2..=events + 1 {
            let event = WireEvent {
                feed: Some("f".to_owned()),
                seq: Some(seq),
                epoch: None,
                ts: Some(0),
                data: RawValue::from_string(data.into()).unwrap(),
                meta: None,
                session: None,
                receipt: None,
            };
            sequencer.on_event(event, now, &mut out);
        }
        let per_event = (live() - before_events) as f64 / events as f64;
        assert_eq!(sequencer.buffered(), events as usize);

        println!("## engine memory (bytes, heap, counted by allocator)");
        println!("| what | bytes |");
        println!("|---|---|");
        println!("| an idle engine (task, channels, stores) | {idle} |");
        println!("| per subscribed feed (10,000 feeds) | {per_feed:.0} |");
        println!("| per buffered out-of-order event, {} bytes of data (50,000 events) | {per_event:.0} |", data.len());
        println!("| of which the event's own data (baseline) | {} |", data.len());
        engine.shutdown().await;
    });
}

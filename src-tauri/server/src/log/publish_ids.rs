//! Publish ids accepted per principal, so a resent publish is acknowledged
//! again instead of published twice (protocol section 6).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Accepted, PublishKey};

pub struct PublishIds {
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<PublishKey, Accepted>,
    order: VecDeque<(Instant, PublishKey)>,
}

impl PublishIds {
    pub fn new(ttl: Duration) -> Self {
        PublishIds {
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The original outcome of `id`, or runs `publish` and remembers its
    /// outcome. Holding the lock across `publish` makes a racing duplicate
    /// wait and then see the first outcome.
    pub fn once(
        &self,
        key: &PublishKey,
        now: Instant,
        publish: impl FnOnce() -> Accepted,
    ) -> (Accepted, bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((at, _)) = inner.order.front() {
            if now.duration_since(*at) < self.ttl {
                break;
            }
            if let Some((_, expired)) = inner.order.pop_front() {
                inner.by_key.remove(&expired);
            }
        }
        if let Some(existing) = inner.by_key.get(key) {
            return (existing.clone(), false);
        }
        let accepted = publish();
        inner.by_key.insert(key.clone(), accepted.clone());
        inner.order.push_back((now, key.clone()));
        (accepted, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Principal;

    fn key(token: &str, id: &str) -> PublishKey {
        PublishKey {
            principal: Principal::for_token(token),
            id: id.into(),
        }
    }

    #[test]
    fn a_repeated_id_gets_the_original_outcome_until_it_expires() {
        let ids = PublishIds::new(Duration::from_secs(600));
        let t0 = Instant::now();
        let first = ids.once(&key("me", "x"), t0, || Accepted {
            feed: "f".into(),
            seq: 1,
        });
        assert!(first.1);
        let again = ids.once(
            &key("me", "x"),
            t0 + Duration::from_secs(599),
            || unreachable!(),
        );
        assert_eq!(
            again,
            (
                Accepted {
                    feed: "f".into(),
                    seq: 1
                },
                false
            )
        );
        let other = ids.once(&key("other", "x"), t0, || Accepted {
            feed: "f".into(),
            seq: 2,
        });
        assert!(other.1, "ids are per token");
        let later = ids.once(&key("me", "x"), t0 + Duration::from_secs(601), || {
            Accepted {
                feed: "f".into(),
                seq: 3,
            }
        });
        assert_eq!(later.0.seq, 3);
    }
}

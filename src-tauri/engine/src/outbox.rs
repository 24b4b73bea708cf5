//! Publishes waiting for their `ack`, in the order they were made.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::error::{PublishAck, PublishError};
use crate::store::{OutboxEntry, OutboxStore, StoreError};

pub(crate) type AckSender = oneshot::Sender<Result<PublishAck, PublishError>>;

struct Pending {
    entry: OutboxEntry,
    sent: bool,
    waiters: Vec<AckSender>,
}

pub(crate) struct Outbox {
    entries: VecDeque<Pending>,
    capacity: usize,
    store: Arc<dyn OutboxStore>,
}

pub(crate) enum Enqueued {
    New,
    /// A publish with this id is already waiting; the caller waits with it.
    Joined,
}

impl Outbox {
    pub fn new(capacity: usize, store: Arc<dyn OutboxStore>) -> Result<Self, StoreError> {
        let entries = store
            .load()?
            .into_iter()
            .map(|entry| Pending {
                entry,
                sent: false,
                waiters: Vec::new(),
            })
            .collect();
        Ok(Outbox {
            entries,
            capacity,
            store,
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity
    }

    pub fn enqueue(
        &mut self,
        entry: OutboxEntry,
        waiter: AckSender,
    ) -> Result<Enqueued, (StoreError, AckSender)> {
        if let Some(existing) = self.entries.iter_mut().find(|p| p.entry.id == entry.id) {
            existing.waiters.push(waiter);
            return Ok(Enqueued::Joined);
        }
        if let Err(err) = self.store.put(&entry) {
            return Err((err, waiter));
        }
        self.entries.push_back(Pending {
            entry,
            sent: false,
            waiters: vec![waiter],
        });
        Ok(Enqueued::New)
    }

    /// Entries not yet sent on this connection, marked as sent.
    pub fn take_unsent(&mut self) -> Vec<OutboxEntry> {
        self.entries
            .iter_mut()
            .filter(|p| !p.sent)
            .map(|p| {
                p.sent = true;
                p.entry.clone()
            })
            .collect()
    }

    /// A connection ended: everything must go again, with the same ids.
    pub fn mark_all_unsent(&mut self) {
        for pending in &mut self.entries {
            pending.sent = false;
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|p| p.entry.id == id)
    }

    /// Settles the publish `id`; returns its entry when it was waiting.
    pub fn settle(
        &mut self,
        id: &str,
        outcome: Result<PublishAck, PublishError>,
    ) -> (Option<OutboxEntry>, Result<(), StoreError>) {
        let Some(index) = self.entries.iter().position(|p| p.entry.id == id) else {
            return (None, Ok(()));
        };
        let Some(pending) = self.entries.remove(index) else {
            return (None, Ok(()));
        };
        for waiter in pending.waiters {
            let _ = waiter.send(outcome.clone());
        }
        let stored = self.store.remove(id);
        (Some(pending.entry), stored)
    }

    pub fn items(&self) -> impl Iterator<Item = (&OutboxEntry, bool)> {
        self.entries.iter().map(|p| (&p.entry, p.sent))
    }
}

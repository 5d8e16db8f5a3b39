//! The queue in front of each processor: bounded in slots and in the bytes its items hold.
//!
//! A bound in slots alone bounds memory only while items are small. A slot holds a reading
//! (about 400 bytes for a sensor's, up to the 64 KiB a payload may take) or everything one call
//! of a plugin read in process emitted (up to its `max_messages`), so 10,000 slots could hold
//! anything from 4 MB to gigabytes. Each item therefore carries its cost in bytes, and a sender
//! waits until the queue's byte budget has room for it, as it waits for a free slot: back-pressure,
//! nothing dropped. The receiver gives the bytes back only once it is done with the item (after
//! the plugin call that read it), so the budget counts what a processor holds, not only what
//! waits.
//!
//! The budget is a semaphore of bytes: taking and giving back are an atomic operation each, and
//! a worker gives back a whole batch's bytes at once ([`Held::merge`]).

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// The largest byte budget of a queue (the semaphore takes a `u32` at a time).
pub const MAX_BYTES: usize = u32::MAX as usize;

/// The sending half; cheap to clone.
pub struct Sender<T> {
    slots: mpsc::Sender<Entry<T>>,
    bytes: Arc<Semaphore>,
    budget: usize,
    /// For [`Sender::blocking_send`] from a worker thread outside the runtime.
    runtime: Handle,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            bytes: self.bytes.clone(),
            budget: self.budget,
            runtime: self.runtime.clone(),
        }
    }
}

/// The receiving half.
pub struct Receiver<T> {
    slots: mpsc::Receiver<Entry<T>>,
}

struct Entry<T> {
    item: T,
    held: Held,
}

/// The bytes of the items received and not yet done with; dropping it gives them back.
#[derive(Default)]
pub struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    /// Adds the bytes of `other`, so that one drop gives both back.
    pub fn merge(&mut self, other: Held) {
        match (&mut self.0, other.0) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }

    /// How many bytes this holds.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

/// The receiver is gone: the processor has stopped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the queue's processor has stopped")]
pub struct Closed;

/// A queue of at most `slots` items holding at most `bytes` bytes. Call it within a tokio
/// runtime: [`Sender::blocking_send`] waits on it.
///
/// # Panics
/// If `slots` is 0 (as `tokio::sync::mpsc::channel`) or `bytes` is above [`MAX_BYTES`].
pub fn bounded<T>(slots: usize, bytes: usize) -> (Sender<T>, Receiver<T>) {
    assert!(bytes <= MAX_BYTES, "a queue's byte budget is at most {MAX_BYTES}");
    let (tx, rx) = mpsc::channel(slots);
    let sender = Sender {
        slots: tx,
        bytes: Arc::new(Semaphore::new(bytes)),
        budget: bytes,
        runtime: Handle::current(),
    };
    (sender, Receiver { slots: rx })
}

impl<T> Sender<T> {
    /// Queues `item`, which holds `cost` bytes, once there is a free slot and room for its bytes.
    /// An item larger than the whole budget waits for an empty queue rather than forever.
    pub async fn send(&self, item: T, cost: usize) -> Result<(), Closed> {
        let held = self.take(cost).await?;
        self.slots.send(Entry { item, held }).await.map_err(|_| Closed)
    }

    /// [`Sender::send`] from a thread outside the runtime (a plugin's worker).
    pub fn blocking_send(&self, item: T, cost: usize) -> Result<(), Closed> {
        let held = match self.try_take(cost) {
            Some(held) => held,
            None => self.runtime.block_on(self.take(cost))?,
        };
        self.slots.blocking_send(Entry { item, held }).map_err(|_| Closed)
    }

    /// Queues an item that holds nothing worth counting (a tick) if a slot is free now.
    pub fn try_send_free(&self, item: T) -> bool {
        self.slots.try_send(Entry { item, held: Held::default() }).is_ok()
    }

    /// Bytes held by items queued or being processed.
    pub fn bytes_held(&self) -> usize {
        self.budget - self.bytes.available_permits().min(self.budget)
    }

    fn permits(&self, cost: usize) -> u32 {
        // `bounded` keeps the budget within u32.
        u32::try_from(cost.min(self.budget)).unwrap_or(u32::MAX)
    }

    fn try_take(&self, cost: usize) -> Option<Held> {
        match self.permits(cost) {
            0 => Some(Held::default()),
            n => self.bytes.clone().try_acquire_many_owned(n).ok().map(|p| Held(Some(p))),
        }
    }

    async fn take(&self, cost: usize) -> Result<Held, Closed> {
        match self.permits(cost) {
            0 => Ok(Held::default()),
            n => self.bytes.clone().acquire_many_owned(n).await.map(|p| Held(Some(p))).map_err(|_| Closed),
        }
    }
}

impl<T> Receiver<T> {
    /// The next item and its bytes, blocking this thread (not a runtime's) until one comes;
    /// `None` once every sender is gone.
    pub fn blocking_recv(&mut self) -> Option<(T, Held)> {
        self.slots.blocking_recv().map(|entry| (entry.item, entry.held))
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<(T, Held)> {
        self.slots.try_recv().ok().map(|entry| (entry.item, entry.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sender_waits_for_bytes_and_gets_them_once_the_receiver_is_done() {
        let (tx, mut rx) = bounded::<u32>(100, 1_000);
        tx.send(1, 600).await.expect("room for the first");
        assert_eq!(tx.bytes_held(), 600);
        // 600 + 600 is over the budget though slots are free: the second send waits.
        let second = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(2, 600).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "a send over the byte budget must wait");

        let (item, held) = rx.try_recv().expect("an item queued");
        assert_eq!((item, held.bytes()), (1, 600));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "received but not done with: the bytes are still held");
        drop(held);
        let sent = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("sent once the bytes came back");
        assert_eq!(sent.expect("the task ran"), Ok(()));
        assert_eq!(tx.bytes_held(), 600);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_item_larger_than_the_budget_goes_through_an_empty_queue() {
        let (tx, mut rx) = bounded::<&str>(10, 100);
        let sent = tokio::time::timeout(Duration::from_secs(5), tx.send("large", 10_000)).await;
        assert_eq!(sent, Ok(Ok(())), "it waited forever");
        assert_eq!(tx.bytes_held(), 100);
        let (item, held) = rx.try_recv().expect("an item queued");
        assert_eq!((item, held.bytes()), ("large", 100));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn merged_bytes_are_given_back_together() {
        let (tx, mut rx) = bounded::<u32>(10, 1_000);
        for i in 0..3 {
            tx.send(i, 100).await.expect("room");
        }
        assert!(tx.try_send_free(99), "a free item takes no bytes");
        let mut batch = Held::default();
        while let Some((_, held)) = rx.try_recv() {
            batch.merge(held);
        }
        assert_eq!((batch.bytes(), tx.bytes_held()), (300, 300));
        drop(batch);
        assert_eq!(tx.bytes_held(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_thread_waits_for_room_and_sees_a_stopped_receiver() {
        let (tx, mut rx) = bounded::<u32>(10, 100);
        let worker = std::thread::spawn({
            let tx = tx.clone();
            move || (tx.blocking_send(1, 80), tx.blocking_send(2, 80))
        });
        let (_, held) = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(first) = rx.try_recv() {
                    return first;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the worker's first item arrives");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!worker.is_finished(), "the second item waits for the first one's bytes");
        // The processor stops with the item's bytes still held; they come back as it ends.
        drop(rx);
        drop(held);
        let ended = tokio::task::spawn_blocking(move || worker.join()).await.expect("joined");
        let (first, second) = ended.expect("the worker did not panic");
        assert_eq!(first, Ok(()));
        // A stopped processor is reported, not waited on forever.
        assert_eq!(second, Err(Closed));
    }
}

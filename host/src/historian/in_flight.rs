//! Writes under way while the next batch fills: InfluxDB ingests one batch while the historian
//! sends the next, instead of the two waiting on each other.
//!
//! Writes complete in any order but are settled in the order they started, so that messages are
//! acknowledged in the order the broker sent them (MQTT 3.1.1, 4.6). A write that did not
//! succeed is settled by the writer's usual path (retries, halving on refused points, spool),
//! before any later one.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::Pending;
use super::sink::{InfluxWriter, WriteResult};

/// At most this many writes under way: enough for the database to work while the next batch
/// travels, few enough that the messages held unacknowledged stay within two batches.
pub const MAX_IN_FLIGHT: usize = 2;

/// A batch whose write was started.
pub struct InFlight {
    pub batch: Vec<Pending>,
    pub lines: Arc<Vec<String>>,
    write: JoinHandle<WriteResult>,
}

/// The writes under way, oldest first.
#[derive(Default)]
pub struct Flights(VecDeque<InFlight>);

impl Flights {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.0.len() >= MAX_IN_FLIGHT
    }

    /// Starts writing `lines` (the points of `batch`) to InfluxDB on a task of its own.
    pub fn start(&mut self, writer: InfluxWriter, batch: Vec<Pending>, lines: Vec<String>) {
        self.start_with(batch, lines, |lines| async move { writer.write(&lines).await });
    }

    fn start_with<F>(
        &mut self,
        batch: Vec<Pending>,
        lines: Vec<String>,
        write: impl FnOnce(Arc<Vec<String>>) -> F,
    ) where
        F: Future<Output = WriteResult> + Send + 'static,
    {
        let lines = Arc::new(lines);
        let write = tokio::spawn(write(lines.clone()));
        self.0.push_back(InFlight { batch, lines, write });
    }

    /// The oldest write once it has finished, with what became of it; pending while there is
    /// none (so that it can sit in a `select!`).
    pub async fn oldest(&mut self) -> (InFlight, WriteResult) {
        let Some(flight) = self.0.front_mut() else {
            return std::future::pending().await;
        };
        let result = match (&mut flight.write).await {
            Ok(result) => result,
            Err(error) => WriteResult::Unavailable(format!("the write task ended: {error}")),
        };
        match self.0.pop_front() {
            Some(flight) => (flight, result),
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn lines(text: &str) -> Vec<String> {
        vec![text.to_owned()]
    }

    /// The second write finishes first; the first is still settled first, so that the broker's
    /// messages are acknowledged in the order it sent them.
    #[tokio::test]
    async fn writes_are_settled_in_the_order_they_started_whatever_order_they_finish_in() {
        let mut flights = Flights::default();
        flights.start_with(Vec::new(), lines("slow"), |_| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            WriteResult::Unavailable("down".into())
        });
        flights.start_with(Vec::new(), lines("fast"), |_| async { WriteResult::Written });
        assert!(flights.is_full());
        let (first, result) = flights.oldest().await;
        assert_eq!((first.lines[0].as_str(), result), ("slow", WriteResult::Unavailable("down".into())));
        let (second, result) = flights.oldest().await;
        assert_eq!((second.lines[0].as_str(), result), ("fast", WriteResult::Written));
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn with_nothing_under_way_the_oldest_never_comes() {
        let mut flights = Flights::default();
        let waited = tokio::time::timeout(Duration::from_millis(20), flights.oldest()).await;
        assert!(waited.is_err());
    }
}

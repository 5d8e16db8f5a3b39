//! The connection to the MQTT broker (rumqttc).
//!
//! rumqttc reconnects by itself each time its event loop is polled again after an error; the
//! host polls with a growing pause, re-subscribes on every new session, and bounds the request
//! queue so that a slow broker slows the plugins down instead of filling memory.

use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, EventLoop, LastWill, MqttOptions, QoS, SubAck, SubscribeFilter, SubscribeReasonCode,
};

use crate::config::MqttConfig;

/// The largest packet the client takes: larger than any accepted payload, so that an oversized
/// message is refused by the decoder with a reason instead of dropping the connection.
const MAX_PACKET: usize = 2 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error(
        "invalid broker URL {url:?}: {reason}. Expected mqtt://HOST:PORT (for example mqtt://127.0.0.1:1883)"
    )]
    Url { url: String, reason: String },
}

/// Host and port of a broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
}

impl BrokerAddress {
    /// Parses `mqtt://host:port` (also `tcp://`; the port defaults to 1883).
    pub fn parse(url: &str) -> Result<Self, MqttError> {
        let error = |reason: &str| MqttError::Url { url: url.to_owned(), reason: reason.to_owned() };
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| error("only the mqtt:// scheme is supported"))?;
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') {
            return Err(error(
                "put no path or credentials in the URL (credentials come from GARONNE_MQTT_USERNAME and GARONNE_MQTT_PASSWORD)",
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| error("the port is not a number"))?),
            None => (rest, 1883),
        };
        if host.is_empty() {
            return Err(error("the host is missing"));
        }
        Ok(Self { host: host.trim_start_matches('[').trim_end_matches(']').to_owned(), port })
    }

    pub fn url(&self) -> String {
        format!("mqtt://{}:{}", self.host, self.port)
    }
}

/// Parses a QoS number from the configuration (validated to 0 or 1 beforehand).
pub fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// How long a connection may stay silent before the client or the broker calls it dead.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The same for a connection whose reader pauses when its queues are full (the pipeline's
/// input). While it pauses, the broker's PINGRESP waits behind the readings in the socket: a
/// pause of two keep-alives of 15 s (a plugin restarting again and again behind its backlog)
/// dropped the connection, and the broker sent again the readings whose acknowledgements had
/// not gone out, duplicates at QoS 1. 60 s is what paho and mosquitto_sub use by default; a
/// broker that goes away closes the socket, which is noticed at once whatever this is.
const PAUSING_KEEP_ALIVE: Duration = Duration::from_secs(60);

/// A client and its event loop; the loop must be polled for anything to happen.
pub fn connect(address: &BrokerAddress, config: &MqttConfig, client_id: &str) -> (AsyncClient, EventLoop) {
    AsyncClient::new(options(address, config, client_id), 1_000)
}

/// Like [`connect`], for a connection that stops being read while its reader's queues are full
/// (back-pressure): a longer keep-alive, so that a long pause does not drop it.
pub fn connect_pausing(
    address: &BrokerAddress,
    config: &MqttConfig,
    client_id: &str,
) -> (AsyncClient, EventLoop) {
    let mut options = options(address, config, client_id);
    options.set_keep_alive(PAUSING_KEEP_ALIVE);
    AsyncClient::new(options, 1_000)
}

/// Like [`connect`], but incoming QoS 1 messages are acknowledged only when the caller says so
/// (`AsyncClient::ack`), once they are safe; `capacity` bounds the request queue.
pub fn connect_manual_acks(
    address: &BrokerAddress,
    config: &MqttConfig,
    client_id: &str,
    capacity: usize,
) -> (AsyncClient, EventLoop) {
    let mut options = options(address, config, client_id);
    options.set_manual_acks(true);
    AsyncClient::new(options, capacity)
}

fn options(address: &BrokerAddress, config: &MqttConfig, client_id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, address.host.clone(), address.port);
    options.set_keep_alive(KEEP_ALIVE);
    options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    options.set_inflight(100);
    // Persistent sessions: QoS 1 messages sent while the host reconnects are kept for it.
    options.set_clean_session(false);
    options.set_last_will(LastWill::new(
        crate::topic::status(client_id),
        r#"{"state":"offline"}"#,
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(user) = &config.username {
        options.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
    }
    options
}

/// Subscribes to every filter in one SUBSCRIBE packet, so that one SubAck says they are all in
/// place: with a packet per filter, the first SubAck came while the others were still on their
/// way, and the first readings of a run could pass before their subscription. `try_`: callers
/// run inside the event loop's task, which must not wait on its own request queue.
pub fn subscribe_all<'a>(client: &AsyncClient, filters: impl IntoIterator<Item = &'a String>, qos: QoS) {
    let filters = packet_order(filters);
    if filters.is_empty() {
        return;
    }
    let packet = filters.iter().map(|filter| SubscribeFilter::new(filter.to_string(), qos));
    if let Err(error) = client.try_subscribe_many(packet) {
        let names: Vec<&str> = filters.iter().map(|f| f.as_str()).collect();
        tracing::error!("cannot subscribe to {}: {error}", names.join(", "));
    }
}

/// How long a starting client waits for the broker to acknowledge its subscriptions.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(10);

/// Waits until `subscribed` says the broker acknowledged `whose` subscriptions, so that a run's
/// first messages reach them; after [`SUBSCRIBE_WAIT`] logs it and goes on.
pub async fn wait_until_subscribed(subscribed: &mut tokio::sync::watch::Receiver<bool>, whose: &str) {
    if tokio::time::timeout(SUBSCRIBE_WAIT, subscribed.wait_for(|done| *done)).await.is_err() {
        tracing::warn!(
            "the broker has not acknowledged {whose} subscriptions within {} s; going on",
            SUBSCRIBE_WAIT.as_secs()
        );
    }
}

/// Keeps what `source` could not take on `garonne/dead-letter/{source}`: the topic it came on,
/// why, and the first KiB of it, as text.
pub fn publish_dead_letter(client: &AsyncClient, source: &str, topic: &str, reason: &str, payload: &[u8]) {
    let shown = String::from_utf8_lossy(&payload[..payload.len().min(1024)]);
    let body = serde_json::json!({"topic": topic, "reason": reason, "payload": shown});
    let _ = client.try_publish(crate::topic::dead_letter(source), QoS::AtLeastOnce, false, body.to_string());
}

/// Logs the filters of [`subscribe_all`] that `suback` refused, saying what that costs; the
/// broker refuses a filter its access list (`acl_file`) denies, or one it finds malformed.
pub fn report_refused<'a>(filters: impl IntoIterator<Item = &'a String>, suback: &SubAck, cost: &str) {
    let refused = refused_filters(filters, suback);
    if !refused.is_empty() {
        tracing::error!(
            "the broker refused the subscriptions to {}: {cost}; check its access list (acl_file) \
             for this client's user",
            refused.join(", ")
        );
    }
}

fn refused_filters<'a>(filters: impl IntoIterator<Item = &'a String>, suback: &SubAck) -> Vec<String> {
    packet_order(filters)
        .into_iter()
        .zip(&suback.return_codes)
        .filter(|(_, code)| matches!(code, SubscribeReasonCode::Failure))
        .map(|(filter, _)| filter.clone())
        .collect()
}

/// The filters as [`subscribe_all`] sends them, sorted and once each: a SubAck's return codes
/// come in this order.
fn packet_order<'a>(filters: impl IntoIterator<Item = &'a String>) -> Vec<&'a String> {
    let mut filters: Vec<&String> = filters.into_iter().collect();
    filters.sort();
    filters.dedup();
    filters
}

/// The pause before polling again after the connection failed `failures` times in a row.
pub fn reconnect_delay(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << failures.min(6));
    Duration::from_millis(ms.min(5_000))
}

/// Says when an input connection should let messages gather before it is read again, and how
/// long.
///
/// rumqttc hands over at most a few packets per read of the connection (9 in 0.25). Below
/// saturation a read brings one or two, and the reads themselves (a wake-up, `epoll_wait`,
/// `recvfrom`, a context switch each time) cost the host more than the messages: half the input
/// task's CPU at 40,000 readings/s. A read that brought fewer packets than the most one has
/// brought (the cap, once the connection has been busy: learnt, not assumed) emptied the socket;
/// after it, a short wait lets the kernel gather a batch. After a full read there is no wait, so
/// a busy input never waits.
///
/// QoS 1 messages gather only below the broker's window: it sends so many unacknowledged
/// messages at once (`max_inflight_messages`, 20 by default in Mosquitto) and keeps the rest in
/// its queue for this client, from which it drops once that is full (`max_queued_messages`,
/// 1,000). So the input measures how fast QoS 1 messages come, and waits after a QoS 1 read only
/// as long as half a window takes to come at that rate (no longer than the linger or 2 ms; not
/// at all under tokio's 1 ms). A read that brought the whole window since the last one that emptied
/// the socket (the rate jumped) stops these waits for [`WINDOW_HOLD`].
#[derive(Debug)]
pub struct ReadPacing {
    since_read: usize,
    full_read: usize,
    acknowledged: bool,
    /// The wait after a read that emptied the socket (`runtime.batch_linger_ms`); zero: none.
    linger: Duration,
    /// How many unacknowledged messages the broker sends at once.
    window: usize,
    /// QoS 1 messages read since the last read of them that emptied the socket, and its time.
    span: Option<(usize, Instant)>,
    /// Recent QoS 1 messages and the time they took to come, older spans fading out.
    arrivals: (f64, f64),
    /// No wait after a QoS 1 read before then: the window was reached.
    held_until: Option<Instant>,
}

/// How long the input reads QoS 1 messages without waiting once the window was reached: one wait
/// in this long can hold the broker back by one window at most.
pub const WINDOW_HOLD: Duration = Duration::from_millis(5);

/// tokio's timers count whole milliseconds: no wait is shorter.
const SHORTEST_WAIT: Duration = Duration::from_millis(1);

/// The longest wait after a QoS 1 read, whatever the linger: a flood that starts during it (up to
/// ~150,000 messages/s through Mosquitto here) queues at most a few hundred messages at the
/// broker, under Mosquitto's default 1,000.
const LONGEST_ACKNOWLEDGED_WAIT: Duration = Duration::from_millis(2);

/// The weight of what was measured before each new span, in the arrival rate.
const FADE: f64 = 0.75;

impl ReadPacing {
    /// Waits of `linger` (zero: none), for a broker that sends `window` unacknowledged QoS 1
    /// messages at once.
    pub fn new(linger: Duration, window: usize) -> Self {
        Self {
            since_read: 0,
            full_read: 0,
            acknowledged: false,
            linger,
            window,
            span: None,
            arrivals: (0.0, 0.0),
            held_until: None,
        }
    }

    /// Counts a packet of the current read.
    pub fn received(&mut self, packet: &rumqttc::Packet) {
        self.since_read += 1;
        if let rumqttc::Packet::Publish(publish) = packet
            && publish.qos != QoS::AtMostOnce
        {
            self.acknowledged = true;
            if let Some((messages, _)) = &mut self.span {
                *messages += 1;
            }
        }
    }

    /// Ends the current read, as the connection is about to be read again: how long to wait
    /// first, if at all.
    pub fn next_wait(&mut self) -> Option<Duration> {
        self.next_wait_at(Instant::now())
    }

    fn next_wait_at(&mut self, now: Instant) -> Option<Duration> {
        self.full_read = self.full_read.max(self.since_read);
        let emptied = self.since_read < self.full_read;
        let acknowledged = self.acknowledged;
        (self.since_read, self.acknowledged) = (0, false);
        if !emptied || self.linger.is_zero() {
            return None;
        }
        if !acknowledged {
            return Some(self.linger);
        }
        if let Some((messages, since)) = self.span.replace((0, now)) {
            self.measured(messages, now.saturating_duration_since(since), now);
        }
        if self.held_until.is_some_and(|until| now < until) {
            return None;
        }
        Some(self.acknowledged_wait()).filter(|wait| *wait >= SHORTEST_WAIT)
    }

    fn measured(&mut self, messages: usize, took: Duration, now: Instant) {
        if messages >= self.window {
            self.held_until = Some(now + WINDOW_HOLD);
        }
        let (count, time) = self.arrivals;
        self.arrivals = (count * FADE + messages as f64, time * FADE + took.as_secs_f64());
    }

    /// As long as half a window takes to come at the recent rate, at most the linger (and
    /// [`LONGEST_ACKNOWLEDGED_WAIT`]); the first, with no rate known yet, is the shortest.
    fn acknowledged_wait(&self) -> Duration {
        let longest = self.linger.min(LONGEST_ACKNOWLEDGED_WAIT);
        let (count, time) = self.arrivals;
        if time <= 0.0 {
            return SHORTEST_WAIT.min(longest);
        }
        let half_window = self.window as f64 / 2.0 * time / count.max(f64::MIN_POSITIVE);
        // tokio ends a sleep on the millisecond tick after its deadline: whole milliseconds
        // asked for take half a millisecond more on average, fractions up to one more.
        let whole_ms = Duration::try_from_secs_f64((half_window * 1000.0).floor() / 1000.0);
        whole_ms.map_or(longest, |wait| wait.min(longest))
    }
}

/// Prints every message of `filter` on stdout as one line `topic payload`, from a task of its
/// own, for `host run --echo` and for a newcomer who wants to see the streams.
pub async fn echo(address: &BrokerAddress, filter: String) {
    let id = format!("garonne-echo-{}", std::process::id());
    let mut options = MqttOptions::new(id, address.host.clone(), address.port);
    options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    let (client, mut events) = AsyncClient::new(options, 16);
    tokio::spawn(async move {
        let mut failures = 0;
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    failures = 0;
                    let _ = client.try_subscribe(filter.clone(), QoS::AtMostOnce);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    use std::io::Write;
                    let line = format!("{} {}\n", p.topic, String::from_utf8_lossy(&p.payload));
                    // The reader went away (`| head`): stop echoing, not the pipeline.
                    if std::io::stdout().lock().write_all(line.as_bytes()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    tokio::time::sleep(reconnect_delay(failures)).await;
                    failures += 1;
                }
            }
        }
    });
}

/// Writes every JSON message of `filters` to `out`, one compact line each, until `count`
/// messages were written or `stop` resolves. Messages that are not JSON are skipped and counted.
pub async fn record(
    address: &BrokerAddress,
    config: &MqttConfig,
    filters: &[String],
    out: &mut impl std::io::Write,
    count: Option<u64>,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<(u64, u64)> {
    let id = format!("garonne-record-{}", std::process::id());
    let mut options = MqttOptions::new(id, address.host.clone(), address.port);
    options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    if let Some(user) = &config.username {
        options.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
    }
    let (client, mut events) = AsyncClient::new(options, 64);
    let (mut written, mut skipped, mut failures) = (0u64, 0u64, 0u32);
    tokio::pin!(stop);
    while count.is_none_or(|n| written < n) {
        let event = tokio::select! {
            _ = &mut stop => break,
            event = events.poll() => event,
        };
        match event {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                failures = 0;
                subscribe_all(&client, filters, QoS::AtLeastOnce);
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                match serde_json::from_slice::<serde_json::Value>(&p.payload) {
                    Ok(json) => {
                        writeln!(out, "{json}")?;
                        written += 1;
                    }
                    Err(_) => skipped += 1,
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!("connection to {} lost: {error}; reconnecting", address.url());
                tokio::time::sleep(reconnect_delay(failures)).await;
                failures += 1;
            }
        }
    }
    out.flush()?;
    let _ = client.disconnect().await;
    Ok((written, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_with_a_default_port() {
        let a = BrokerAddress::parse("mqtt://127.0.0.1:1884").expect("valid url");
        assert_eq!(a, BrokerAddress { host: "127.0.0.1".into(), port: 1884 });
        let b = BrokerAddress::parse("mqtt://broker").expect("valid url");
        assert_eq!(b.port, 1883);
        assert_eq!(BrokerAddress::parse("tcp://[::1]:1883").expect("valid").host, "::1");
    }

    #[test]
    fn bad_urls_say_what_is_expected() {
        for url in ["http://x:1", "mqtt://:1883", "mqtt://h:port", "mqtt://u:p@h:1", "mqtt://h:1/x"] {
            let message = BrokerAddress::parse(url).expect_err(url).to_string();
            assert!(message.contains("mqtt://HOST:PORT"), "{message}");
        }
    }

    #[test]
    fn a_suback_names_the_filters_it_refused_in_the_order_they_were_sent() {
        let filters: Vec<String> = ["b/#", "a/#", "c/+", "a/#"].iter().map(|f| f.to_string()).collect();
        // Sent sorted and once each: a/#, b/#, c/+.
        let codes = vec![
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
            SubscribeReasonCode::Failure,
            SubscribeReasonCode::Failure,
        ];
        assert_eq!(refused_filters(&filters, &SubAck::new(1, codes)), ["b/#", "c/+"]);
        let all_in = vec![SubscribeReasonCode::Success(QoS::AtMostOnce); 3];
        assert!(refused_filters(&filters, &SubAck::new(2, all_in)).is_empty());
    }

    const LINGER: Duration = Duration::from_millis(2);

    fn read_at(pacing: &mut ReadPacing, packets: &[QoS], now: Instant) -> Option<Duration> {
        for &qos in packets {
            pacing.received(&rumqttc::Packet::Publish(rumqttc::Publish::new("t", qos, "{}")));
        }
        pacing.next_wait_at(now)
    }

    fn read(pacing: &mut ReadPacing, packets: &[QoS]) -> Option<Duration> {
        read_at(pacing, packets, Instant::now())
    }

    #[test]
    fn the_input_waits_only_after_a_read_that_emptied_the_socket() {
        let mut pacing = ReadPacing::new(LINGER, 20);
        let full = [QoS::AtMostOnce; 9];
        assert_eq!(read(&mut pacing, &[QoS::AtMostOnce]), None, "the size of a full read is not known yet");
        assert_eq!(read(&mut pacing, &full), None, "a full read");
        assert_eq!(read(&mut pacing, &full), None, "more data may wait in the socket");
        assert_eq!(read(&mut pacing, &[QoS::AtMostOnce; 3]), Some(LINGER), "3 of 9: the socket was empty");
        assert_eq!(read(&mut pacing, &[QoS::AtMostOnce]), Some(LINGER));
        assert_eq!(read(&mut pacing, &full), None);
    }

    #[test]
    fn no_linger_no_wait() {
        let mut pacing = ReadPacing::new(Duration::ZERO, 20);
        read(&mut pacing, &[QoS::AtMostOnce; 9]);
        assert_eq!(read(&mut pacing, &[QoS::AtMostOnce]), None);
        assert_eq!(read(&mut pacing, &[QoS::AtLeastOnce]), None);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Pacing that has seen a full read of QoS 1 messages, then one that emptied the socket at
    /// `start`: the first span of QoS 1 messages is being counted from there.
    fn counting_from(start: Instant, linger: Duration, window: usize) -> ReadPacing {
        let mut pacing = ReadPacing::new(linger, window);
        read_at(&mut pacing, &[QoS::AtLeastOnce; 9], start);
        read_at(&mut pacing, &[QoS::AtLeastOnce], start);
        pacing
    }

    #[test]
    fn after_qos_1_reads_the_input_waits_as_long_as_half_the_brokers_window_takes_to_come() {
        let mut pacing = ReadPacing::new(ms(50), 100);
        let start = Instant::now();
        read_at(&mut pacing, &[QoS::AtLeastOnce; 9], start);
        assert_eq!(read_at(&mut pacing, &[QoS::AtLeastOnce; 4], start), Some(ms(1)), "no rate known yet");
        // 10 messages in 4 ms: 2,500 a second, half a window in 20 ms, but QoS 1 waits stop at 2.
        read_at(&mut pacing, &[QoS::AtLeastOnce; 9], start + ms(2));
        assert_eq!(read_at(&mut pacing, &[QoS::AtLeastOnce], start + ms(4)), Some(ms(2)));
        // 98 more in 1 ms: the rate (old spans fading) is 105.5 messages in 4 ms.
        for _ in 0..9 {
            read_at(&mut pacing, &[QoS::AtLeastOnce; 9], start + ms(5));
        }
        assert_eq!(read_at(&mut pacing, &[QoS::AtLeastOnce; 9], start + ms(5)), None, "a full read");
        assert_eq!(
            read_at(&mut pacing, &[QoS::AtLeastOnce; 8], start + ms(5)),
            Some(ms(1)),
            "1.9 ms: 1 whole"
        );
        // The linger is the longest wait when it is shorter.
        let mut short = counting_from(start, ms(1), 100);
        assert_eq!(read_at(&mut short, &[QoS::AtLeastOnce], start + ms(100)), Some(ms(1)));
    }

    #[test]
    fn no_wait_under_a_millisecond() {
        let start = Instant::now();
        let mut pacing = counting_from(start, ms(2), 20);
        // 19 in 1 ms: 19,000 a second, half a window in 0.53 ms.
        read_at(&mut pacing, &[QoS::AtLeastOnce; 9], start);
        assert_eq!(read_at(&mut pacing, &[QoS::AtLeastOnce; 9], start + ms(1)), None, "a full read");
        assert_eq!(read_at(&mut pacing, &[QoS::AtLeastOnce], start + ms(1)), None);
        assert_eq!(
            read_at(&mut pacing, &[QoS::AtMostOnce], start + ms(1)),
            Some(ms(2)),
            "QoS 0 has no window"
        );
    }

    #[test]
    fn a_window_come_at_once_stops_the_qos_1_waits_for_a_while() {
        let start = Instant::now();
        let mut pacing = counting_from(start, ms(50), 20);
        // 20 messages over 200 ms: slow on average, but they filled the window.
        read_at(&mut pacing, &[QoS::AtLeastOnce; 9], start + ms(100));
        read_at(&mut pacing, &[QoS::AtLeastOnce; 9], start + ms(199));
        let then = start + ms(200);
        assert_eq!(read_at(&mut pacing, &[QoS::AtLeastOnce; 2], then), None, "held: read on at once");
        assert_eq!(read_at(&mut pacing, &[QoS::AtLeastOnce], then + WINDOW_HOLD / 2), None);
        assert_eq!(read_at(&mut pacing, &[QoS::AtMostOnce], then), Some(ms(50)), "QoS 0: the linger");
        assert!(read_at(&mut pacing, &[QoS::AtLeastOnce], then + WINDOW_HOLD).is_some(), "the hold is over");
    }

    #[test]
    fn reconnection_backs_off_to_five_seconds() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(100));
        assert_eq!(reconnect_delay(1), Duration::from_millis(200));
        assert_eq!(reconnect_delay(30), Duration::from_secs(5));
    }
}

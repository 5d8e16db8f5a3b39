//! The embedded MQTT broker (rumqttd), so that the demo needs nothing installed.

use std::net::{SocketAddr, TcpListener};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("this host was built without the embedded broker: give a broker with --mqtt mqtt://HOST:PORT")]
    NotBuiltIn,
    #[error("cannot find a free port on 127.0.0.1 for the embedded broker: {0}")]
    NoPort(std::io::Error),
    #[error(
        "the embedded broker did not start listening on {0} within 5 s: another program (another \
         `host run`?) may have taken the port at the same moment; run again, or give another port \
         with `embedded_port` under [mqtt] in the pipeline file"
    )]
    NotListening(SocketAddr),
    #[error("cannot start the embedded broker: {0}")]
    Start(String),
}

/// Where the embedded broker listens.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker {
    pub mqtt: SocketAddr,
    pub websocket: Option<SocketAddr>,
}

/// A port on 127.0.0.1: `preferred` if it is free, any free one otherwise.
pub fn free_port(preferred: u16) -> Result<u16, BrokerError> {
    if preferred != 0 && TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        return Ok(preferred);
    }
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(BrokerError::NoPort)?;
    Ok(listener.local_addr().map_err(BrokerError::NoPort)?.port())
}

/// Waits until the broker holds the port. Probing by binding rather than connecting keeps the
/// broker from logging a half-open connection as an error.
#[cfg(feature = "embedded-broker")]
fn wait_until_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    use std::time::{Duration, Instant};

    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if TcpListener::bind(addr).is_err() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(BrokerError::NotListening(addr))
}

/// Unacknowledged QoS 1 messages the embedded broker sends a client at once.
pub const MAX_INFLIGHT: usize = 500;

/// Starts the broker on 127.0.0.1 (never on other interfaces) in its own threads.
#[cfg(feature = "embedded-broker")]
pub fn start(preferred_port: u16, websocket_port: Option<u16>) -> Result<EmbeddedBroker, BrokerError> {
    use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

    let mqtt: SocketAddr = ([127, 0, 0, 1], free_port(preferred_port)?).into();
    let websocket = match websocket_port {
        Some(port) => Some(SocketAddr::from(([127, 0, 0, 1], free_port(port)?))),
        None => None,
    };
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 2 * 1024 * 1024,
        max_inflight_count: MAX_INFLIGHT,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = |name: &str, listen| ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: connections.clone(),
    };
    let config = Config {
        router: RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 4 * 1024 * 1024,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(std::collections::HashMap::from([("1".to_owned(), server("mqtt", mqtt))])),
        v5: None,
        ws: websocket.map(|ws| std::collections::HashMap::from([("1".to_owned(), server("ws", ws))])),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("garonne-broker".into())
        .spawn(move || {
            if let Err(error) = broker.start() {
                tracing::error!("embedded broker stopped: {error}");
            }
        })
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    wait_until_listening(mqtt)?;
    if let Some(ws) = websocket {
        wait_until_listening(ws)?;
    }
    Ok(EmbeddedBroker { mqtt, websocket })
}

#[cfg(not(feature = "embedded-broker"))]
pub fn start(_preferred_port: u16, _websocket_port: Option<u16>) -> Result<EmbeddedBroker, BrokerError> {
    Err(BrokerError::NotBuiltIn)
}

//! Where the points go: InfluxDB over HTTP (the 1.x `/write` API or the 2.x/3.x
//! `/api/v2/write` API), or, with no database configured, line-protocol files on disk.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::HistorianError;
use super::config::{InfluxApi, InfluxConfig};

/// How long one write may take before the database counts as unreachable.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of a write.
#[derive(Debug, PartialEq)]
pub enum WriteResult {
    Written,
    /// The database refused the points themselves (HTTP 400, 413, 422): sending them again
    /// will not help.
    Rejected(String),
    /// The database could not take them now (no connection, timeout, 5xx, 401/403/404, 429):
    /// keep them and try again later.
    Unavailable(String),
}

pub enum Sink {
    Influx(Box<InfluxWriter>),
    Files(FileWriter),
}

impl Sink {
    pub async fn write(&mut self, lines: &[String]) -> WriteResult {
        match self {
            Sink::Influx(writer) => writer.write(lines).await,
            Sink::Files(writer) => writer.write(lines),
        }
    }

    /// A writer for a write that may run beside others: InfluxDB works on one batch while the
    /// next is sent. Files are written one batch at a time (`None`).
    pub fn concurrent(&self) -> Option<InfluxWriter> {
        match self {
            Sink::Influx(writer) => Some(InfluxWriter::clone(writer)),
            Sink::Files(_) => None,
        }
    }

    /// Where the points go, for the log.
    pub fn describe(&self) -> String {
        match self {
            Sink::Influx(writer) => format!("InfluxDB at {}", writer.shown_url),
            Sink::Files(writer) => format!("line-protocol files in {}", writer.dir.display()),
        }
    }
}

/// Cheap to clone (the HTTP client is shared): a clone makes a write of its own, so that two can
/// be under way at once.
#[derive(Clone)]
pub struct InfluxWriter {
    client: Client<HttpConnector, Full<Bytes>>,
    write_url: hyper::Uri,
    shown_url: String,
    authorization: Option<String>,
    gzip: bool,
}

impl InfluxWriter {
    pub fn new(config: &InfluxConfig, gzip: bool) -> Result<Self, HistorianError> {
        let base = config.url.trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err(HistorianError::Config(format!(
                "historian.influxdb.url {base:?}: only http:// is supported; reach an HTTPS database \
                 through a local TLS proxy (nginx, stunnel)"
            )));
        }
        let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
        let (url, authorization) = match config.api()? {
            InfluxApi::V1 { database } => {
                let mut url = format!("{base}/write?db={}&precision=ms", encode(database));
                if let Some(rp) = &config.retention_policy {
                    url.push_str(&format!("&rp={}", encode(rp)));
                }
                let authorization = config.username.as_ref().map(|user| {
                    use base64::Engine as _;
                    let pair = format!("{user}:{}", config.password.as_deref().unwrap_or(""));
                    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
                });
                (url, authorization)
            }
            InfluxApi::V2 { org, bucket } => {
                let url =
                    format!("{base}/api/v2/write?org={}&bucket={}&precision=ms", encode(org), encode(bucket));
                (url, config.token.as_ref().map(|token| format!("Token {token}")))
            }
        };
        let write_url = url.parse().map_err(|e| {
            HistorianError::Config(format!("historian.influxdb.url {base:?} is not a valid URL: {e}"))
        })?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self { client, write_url, shown_url: base.to_owned(), authorization, gzip })
    }

    pub async fn write(&self, lines: &[String]) -> WriteResult {
        let mut body = lines.join("\n").into_bytes();
        body.push(b'\n');
        let mut request =
            hyper::Request::post(self.write_url.clone()).header(CONTENT_TYPE, "text/plain; charset=utf-8");
        if self.gzip {
            body = match gzip(&body) {
                Ok(compressed) => compressed,
                Err(error) => return WriteResult::Unavailable(format!("cannot compress the batch: {error}")),
            };
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let request = match request.body(Full::new(Bytes::from(body))) {
            Ok(request) => request,
            Err(error) => return WriteResult::Rejected(format!("cannot build the request: {error}")),
        };
        let response = match tokio::time::timeout(WRITE_TIMEOUT, self.client.request(request)).await {
            Err(_) => return WriteResult::Unavailable(format!("no answer within {WRITE_TIMEOUT:?}")),
            Ok(Err(error)) => return WriteResult::Unavailable(format!("cannot reach it: {error}")),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() {
            return WriteResult::Written;
        }
        let text = match tokio::time::timeout(WRITE_TIMEOUT, response.into_body().collect()).await {
            Ok(Ok(body)) => String::from_utf8_lossy(&body.to_bytes()).trim().to_owned(),
            _ => String::new(),
        };
        let message = format!("HTTP {status}: {text}");
        match status {
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY => {
                WriteResult::Rejected(message)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => WriteResult::Unavailable(format!(
                "{message}. Check the credentials (GARONNE_INFLUX_TOKEN, or GARONNE_INFLUX_USERNAME and \
                 GARONNE_INFLUX_PASSWORD)"
            )),
            StatusCode::NOT_FOUND => WriteResult::Unavailable(format!(
                "{message}. Check that the database or bucket exists and that the API version matches \
                 (`database` for InfluxDB 1.x, `org` and `bucket` for 2.x/3.x)"
            )),
            _ => WriteResult::Unavailable(message),
        }
    }
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

/// Appends points to one file per day, `{name}-YYYY-MM-DD.lp`, for `influx write` to import.
pub struct FileWriter {
    pub dir: PathBuf,
    pub name: String,
}

impl FileWriter {
    fn write(&mut self, lines: &[String]) -> WriteResult {
        match self.append(lines) {
            Ok(()) => WriteResult::Written,
            Err(error) => {
                WriteResult::Unavailable(format!("cannot write in {}: {error}", self.dir.display()))
            }
        }
    }

    fn append(&self, lines: &[String]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let today = time::OffsetDateTime::now_utc().date();
        let path = self.dir.join(format!("{}-{today}.lp", self.name));
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let mut body = lines.join("\n");
        body.push('\n');
        file.write_all(body.as_bytes())?;
        file.sync_data()
    }
}

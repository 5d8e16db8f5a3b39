//! A small static file server for the demo: the web map (`web/public/`) and its `config.json`,
//! so that a newcomer sees the live map with nothing installed. In production nginx serves the
//! same folder (`deploy/nginx/`).
//!
//! It answers GET and HEAD on 127.0.0.1 only, never leaves its folder, and serves a generated
//! `config.json` that points the page at the embedded broker's WebSocket listener. Sixty lines
//! of hyper, already in the tree, rather than a web framework for a handful of files.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("the web folder {0} has no index.html: run `npm ci` in web/ (cargo xtask demo does it)")]
    NoIndex(PathBuf),
    #[error("cannot listen on 127.0.0.1:{port} for the web map: {error}")]
    Bind { port: u16, error: std::io::Error },
}

/// The web server, running until dropped.
pub struct WebServer {
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `root` on 127.0.0.1:`port` (a free port if it is taken), with `config_json` as
/// `/config.json`.
pub async fn serve(root: PathBuf, port: u16, config_json: String) -> Result<WebServer, WebError> {
    if !root.join("index.html").is_file() {
        return Err(WebError::NoIndex(root));
    }
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(_) => tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|error| WebError::Bind { port, error })?,
    };
    let address = listener.local_addr().map_err(|error| WebError::Bind { port, error })?;
    let site = std::sync::Arc::new(Site { root, config_json: Bytes::from(config_json) });
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let site = site.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let site = site.clone();
                    async move { Ok::<_, Infallible>(site.answer(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(WebServer { address, task })
}

struct Site {
    root: PathBuf,
    config_json: Bytes,
}

impl Site {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        }
        let path = request.uri().path();
        if path == "/config.json" {
            return file_response("json", self.config_json.clone());
        }
        let Some(file) = resolve(&self.root, path) else {
            return plain(StatusCode::NOT_FOUND, "not found");
        };
        match tokio::fs::read(&file).await {
            Ok(bytes) => {
                let extension = file.extension().and_then(|e| e.to_str()).unwrap_or("");
                file_response(extension, Bytes::from(bytes))
            }
            Err(_) => plain(StatusCode::NOT_FOUND, "not found"),
        }
    }
}

/// The file a URL path names under `root`, refusing anything that would leave it.
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(url_path).decode_utf8().ok()?;
    let relative = Path::new(decoded.trim_start_matches('/'));
    if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let path = root.join(relative);
    if path.is_dir() { Some(path.join("index.html")) } else { Some(path) }
}

fn file_response(extension: &str, body: Bytes) -> Response<Full<Bytes>> {
    let content_type = match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "geojson" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    };
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-cache"));
    headers.insert("x-content-type-options", hyper::header::HeaderValue::from_static("nosniff"));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_leave_the_folder() {
        let root = Path::new("/srv/web");
        assert_eq!(resolve(root, "/app.js"), Some(PathBuf::from("/srv/web/app.js")));
        assert_eq!(resolve(root, "/vendor/leaflet.js"), Some(PathBuf::from("/srv/web/vendor/leaflet.js")));
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/vendor/%2e%2e/%2e%2e/etc/passwd"), None);
        assert_eq!(resolve(root, "//etc/passwd"), Some(PathBuf::from("/srv/web/etc/passwd")));
    }
}

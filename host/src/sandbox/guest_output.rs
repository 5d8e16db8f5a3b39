//! A plugin's stdout and stderr, sent line by line to the host's log with the plugin's name.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// A line longer than this is logged in pieces, so a guest printing without newlines cannot
/// grow the host's memory.
const MAX_LINE: usize = 4096;
/// Lines of stderr kept to explain a trap: a Rust guest prints its panic message there just
/// before it aborts, and that message is what the plugin's author needs to see.
const TAIL_LINES: usize = 4;

/// The last lines a guest wrote on stderr.
#[derive(Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: &str) {
        if let Ok(mut lines) = self.0.lock() {
            if lines.len() == TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line.to_owned());
        }
    }

    pub fn clear(&self) {
        if let Ok(mut lines) = self.0.lock() {
            lines.clear();
        }
    }

    /// The kept lines joined, or `None` if the guest wrote nothing.
    pub fn text(&self) -> Option<String> {
        let lines = self.0.lock().ok()?;
        (!lines.is_empty()).then(|| lines.iter().map(String::as_str).collect::<Vec<_>>().join(" | "))
    }
}

#[derive(Clone)]
pub(crate) struct GuestOutput {
    plugin: Arc<str>,
    stream: &'static str,
    tail: Option<StderrTail>,
}

impl GuestOutput {
    pub fn stdout(plugin: Arc<str>) -> Self {
        Self { plugin, stream: "stdout", tail: None }
    }

    pub fn stderr(plugin: Arc<str>, tail: StderrTail) -> Self {
        Self { plugin, stream: "stderr", tail: Some(tail) }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineLogger { out: self.clone(), line: Vec::new() })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests use this path; they get the same lines, without buffering.
        Box::new(LineLoggerAsync(self.clone()))
    }
}

struct LineLogger {
    out: GuestOutput,
    line: Vec<u8>,
}

impl LineLogger {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches(['\r', '\n']);
        tracing::info!(plugin = &*self.out.plugin, stream = self.out.stream, "{text}");
        if let Some(tail) = &self.out.tail {
            tail.push(text);
        }
        self.line.clear();
    }
}

impl OutputStream for LineLogger {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        for &byte in bytes.iter() {
            self.line.push(byte);
            if byte == b'\n' || self.line.len() >= MAX_LINE {
                self.emit();
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
    }
}

#[async_trait::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

struct LineLoggerAsync(GuestOutput);

impl tokio::io::AsyncWrite for LineLoggerAsync {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let text = String::from_utf8_lossy(buf);
        tracing::info!(plugin = &*self.0.plugin, stream = self.0.stream, "{}", text.trim_end());
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

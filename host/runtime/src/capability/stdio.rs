//! Guest stdout/stderr: bounded in-memory pipes whose lines end up in the operation log.
//!
//! Writes past the cap are discarded (and counted) instead of failing, so a chatty guest is
//! neither trapped nor able to grow host memory.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Default)]
struct Buf {
    data: Vec<u8>,
    discarded: usize,
}

/// A capped, cloneable output pipe.
#[derive(Clone)]
pub(crate) struct CappedPipe {
    cap: usize,
    buf: Arc<Mutex<Buf>>,
}

impl CappedPipe {
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, buf: Arc::default() }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        if let Ok(mut b) = self.buf.lock() {
            let room = self.cap.saturating_sub(b.data.len());
            let take = room.min(bytes.len());
            b.data.extend_from_slice(&bytes[..take]);
            b.discarded += bytes.len() - take;
        }
    }

    /// The captured text split into lines, and how many bytes were discarded.
    pub(crate) fn take_lines(&self) -> (Vec<String>, usize) {
        let Ok(mut b) = self.buf.lock() else { return (Vec::new(), 0) };
        let data = std::mem::take(&mut b.data);
        let text = String::from_utf8_lossy(&data);
        let lines = text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
        (lines, std::mem::take(&mut b.discarded))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discards_past_cap() {
        let p = CappedPipe::new(8);
        p.write_bytes(b"hello\nworld\n");
        let (lines, discarded) = p.take_lines();
        assert_eq!(lines, vec!["hello".to_string(), "wo".to_string()]);
        assert_eq!(discarded, 4);
    }
}

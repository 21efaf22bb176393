//! Closes connections that stop moving bytes.
//!
//! hyper bounds the time to read request headers but has no idle timeout for a connection
//! whose client stalls mid-body or stops reading a response, so this wrapper provides one:
//! the stream fails with `TimedOut` once neither a read nor a write has made progress for
//! the timeout. Hand-written because a plain read timeout would also cut long downloads,
//! during which the client rightly sends nothing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::http::reclaim::Activity;

pub struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    last_progress: Instant,
    sleep: Pin<Box<Sleep>>,
    /// The same progress, shared with the registry of open connections.
    activity: Activity,
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, timeout: Duration, activity: Activity) -> Self {
        let now = Instant::now();
        Self {
            inner,
            timeout,
            last_progress: now,
            sleep: Box::pin(tokio::time::sleep_until(now + timeout)),
            activity,
        }
    }

    /// Called when an operation is pending: errors once the connection has been idle too
    /// long, else makes sure the task is woken at the deadline. The timer is re-armed
    /// lazily, only when it fires early, so busy connections cost no timer updates.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            let deadline = self.last_progress + self.timeout;
            if self.sleep.deadline() < deadline {
                if self.sleep.as_mut().poll(cx).is_pending() {
                    return Ok(());
                }
                self.sleep.as_mut().reset(deadline);
                continue;
            }
            if self.sleep.as_mut().poll(cx).is_ready() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long"));
            }
            return Ok(());
        }
    }

    /// Passes a result through, noting progress, or turns a pending one into a timeout
    /// error once the connection has been idle too long.
    fn track<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.last_progress = Instant::now();
                self.activity.touch();
                Poll::Ready(r)
            }
            Poll::Pending => match self.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.track(cx, r)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.track(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.track(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

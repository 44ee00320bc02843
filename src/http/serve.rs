//! The accept loop: HTTP/1.1 connections with a bound on how many are open, how long a request
//! head may take and how long a kept-alive connection may sit idle, so that half-open or idle
//! connections cannot hold every file descriptor (`axum::serve` has neither).
//!
//! Each connection is watched from outside hyper, by what crosses it:
//! - from accept, and from the first byte read after an answer, the request head must be
//!   complete (the handler called) within `header_read_timeout`;
//! - after an answer has been written, the next request must begin within `idle_timeout`;
//! - while a handler runs, neither applies.
//!
//! A connection past either is dropped (closed). `max_connections` connections are served at
//! once; further ones wait in the listen backlog until one closes, so an accepted connection
//! (and `/healthz` on it) keeps being answered.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};

/// Limits on connections; the defaults are `xueji serve`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeConfig {
    /// From accept (or the first byte of a request on a kept-alive connection) to a complete
    /// request head.
    pub header_read_timeout: Duration,
    /// From an answer to the first byte of the next request on the same connection.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

/// The most connections `max_connections` may allow (a tokio semaphore holds fewer than
/// `usize::MAX >> 3` permits; a process rarely has more descriptors than this).
pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets every
/// connection finish the request it is answering, and returns once all are closed. Handlers
/// may extract `ConnectInfo<SocketAddr>`.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let max = config.max_connections.clamp(1, MAX_CONNECTIONS_LIMIT);
    let slots = Arc::new(Semaphore::new(max));
    let (stop, stopping) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    drop(slot);
                    if !is_connection_error(&e) {
                        // Out of descriptors or memory: wait, rather than spin, for some to free.
                        tracing::error!(error = %e, "accept failed");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            connection(stream, remote, app, config, stopping).await;
            drop(slot);
        });
    }
    drop(listener);
    drop(stop);
    // Every connection holds a slot until it closes: all slots back means all closed.
    let _ = slots.acquire_many(max as u32).await;
    Ok(())
}

/// Errors of one connection (the peer gave up before it was accepted), not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    config: ServeConfig,
    mut stopping: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let app = TowerToHyperService::new(app);
    let in_handler = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        let busy = Busy::begin(in_handler.clone());
        let answer = hyper::service::Service::call(&app, req);
        async move {
            let response = answer.await;
            drop(busy);
            response
        }
    });
    // hyper's own header timer is off: it would also end a kept-alive connection idle for the
    // header timeout, where the idle timeout should.
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service);
    let mut conn = pin!(conn);
    let mut stop_asked = false;
    loop {
        let deadline = activity.deadline(&config);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            changed = stopping.changed(), if !stop_asked => {
                let _ = changed;
                stop_asked = true;
                // Finishes the request being answered, then closes.
                conn.as_mut().graceful_shutdown();
            }
            () = activity.changed.notified() => {}
            () = tokio::time::sleep_until(deadline.into()) => {
                if activity.expired(&config) {
                    // Dropping the connection closes the socket; no handler is running.
                    return;
                }
            }
        }
    }
}

/// What the connection's bytes and handlers say about it, in milliseconds since accept.
struct Activity {
    started: Instant,
    /// Handlers running on the connection.
    busy: AtomicUsize,
    /// When the request head being read began (`NONE` when none is), or accept.
    head_since: AtomicU64,
    /// The last answer finished, or the last byte written.
    last: AtomicU64,
    /// Told when the deadline may have come closer (a head began, a handler ended).
    changed: Notify,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            busy: AtomicUsize::new(0),
            head_since: AtomicU64::new(0),
            last: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn read(&self) {
        if self.busy.load(Ordering::SeqCst) == 0 && self.head_since.load(Ordering::SeqCst) == NONE {
            let began = self.head_since.compare_exchange(
                NONE,
                self.now(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            if began.is_ok() {
                self.changed.notify_one();
            }
        }
    }

    fn wrote(&self) {
        self.last.store(self.now(), Ordering::SeqCst);
    }

    /// When the connection expires if nothing happens meanwhile.
    fn deadline(&self, config: &ServeConfig) -> Instant {
        let at = |since: u64, limit: Duration| self.started + Duration::from_millis(since) + limit;
        if self.busy.load(Ordering::SeqCst) > 0 {
            // Nothing expires while a handler runs; look again later.
            return Instant::now() + config.idle_timeout.min(config.header_read_timeout);
        }
        match self.head_since.load(Ordering::SeqCst) {
            NONE => at(self.last.load(Ordering::SeqCst), config.idle_timeout),
            since => at(since, config.header_read_timeout),
        }
    }

    fn expired(&self, config: &ServeConfig) -> bool {
        self.busy.load(Ordering::SeqCst) == 0 && Instant::now() >= self.deadline(config)
    }
}

/// A handler running on the connection, from its request head until its answer is ready.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: Arc<Activity>) -> Busy {
        activity.busy.fetch_add(1, Ordering::SeqCst);
        activity.head_since.store(NONE, Ordering::SeqCst);
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.wrote();
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_one();
    }
}

/// The socket, noting each read and write in [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
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

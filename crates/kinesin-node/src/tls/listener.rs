//! Accepts TCP connections and completes their TLS handshakes off the accept path, so one slow or
//! silent client delays no one else; the HTTP server takes only connections that finished theirs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kinesin_raft::RefusalLog;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take over its handshake: half-open connections must not pile up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; past it, connections wait in the kernel's accept queue.
const MAX_HANDSHAKES: usize = 1024;
/// Connections that finished their handshake and wait for the HTTP server to take them.
const READY_QUEUE: usize = 64;

type Ready = (TlsStream<TcpStream>, SocketAddr);

/// A listener for `axum::serve`, like a `TcpListener` but yielding TLS streams.
pub struct TlsListener {
    ready: mpsc::Receiver<Ready>,
    local_addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp`. Accepting stops, and the port closes, when this is dropped
    /// (as `axum::serve` does once it shuts down).
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        TlsListener::logging_refusals(tcp, config, None)
    }

    /// The same, logging failed handshakes as refusals in `refusals` (once per client address)
    /// instead of at debug level: on the cluster port a failed handshake is a node (or an
    /// intruder) without a certificate of the cluster's CA, which an operator must hear of.
    pub fn logging_refusals(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        refusals: Option<Arc<RefusalLog>>,
    ) -> std::io::Result<TlsListener> {
        let local_addr = tcp.local_addr()?;
        let (ready_tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(accept_loop(
            tcp,
            TlsAcceptor::from(config),
            ready_tx,
            refusals,
        ));
        Ok(TlsListener { ready, local_addr })
    }
}

async fn accept_loop(
    mut tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<Ready>,
    refusals: Option<Arc<RefusalLog>>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            permit = handshakes.clone().acquire_owned() => permit,
            _ = ready.closed() => return,
        };
        let Ok(permit) = permit else {
            return; // never closed
        };
        // axum's accept logs and backs off on errors (e.g. out of file descriptors).
        let (stream, peer) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut tcp) => accepted,
            _ = ready.closed() => return,
        };
        let (acceptor, ready, refusals) = (acceptor.clone(), ready.clone(), refusals.clone());
        tokio::spawn(async move {
            // TLS records are flushed whole; Nagle would only hold back their last segment.
            let _ = stream.set_nodelay(true);
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(permit);
            match handshake {
                Ok(Ok(tls)) => {
                    // Fails only when the server stopped: the connection is then just closed.
                    let _ = ready.send((tls, peer)).await;
                }
                // Once per address, and not forgotten when a handshake from it succeeds: nodes
                // sharing an address (a test's, all on 127.0.0.1) would log each other anew.
                Ok(Err(e))
                    if refusals
                        .as_ref()
                        .is_some_and(|r| r.refused(&peer.ip().to_string())) =>
                {
                    tracing::warn!(peer = %peer.ip(), error = %e, "cluster connection refused: TLS handshake failed (no certificate, or not one of the cluster's CA); logged once per peer address");
                }
                // Routine on a public port (scanners, plain HTTP sent to the TLS port, clients
                // that reject the certificate): the connection is closed, nothing else to do.
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => {
                    tracing::debug!(%peer, timeout_secs = HANDSHAKE_TIMEOUT.as_secs(), "TLS handshake timed out")
                }
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop ends only after this listener is dropped: unreachable, but waiting
            // forever is the honest answer of a listener that accepts nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

//! TLS between controllers and brokers. Every node presents its node
//! certificate, signed by the cluster CA, both as a server (the controller
//! API) and as a client (Raft between controllers, brokers following the
//! metadata log and heartbeating, `strata controller` commands). A peer
//! without a certificate from that CA fails the handshake, so a broker
//! without one cannot register or read metadata. The server certificate
//! is reloaded when its files change (see [`TlsReloader`]); the client side
//! reads its files at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::auth::tls::{self, TlsError, TlsFiles, TlsFlags, TlsReloader};

/// The node TLS flags.
pub const FLAGS: TlsFlags = TlsFlags {
    cert: "--controller-tls-cert",
    key: "--controller-tls-key",
    client_ca: "--controller-tls-ca",
};

/// Handshakes in progress at once on the controller port.
const MAX_HANDSHAKES: usize = 256;
/// A handshake not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Node TLS flags (of `strata serve` and of the commands that call a
/// controller).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NodeTlsArgs {
    /// PEM node certificate for the controller API, presented as server and as client (with --controller-tls-key and --controller-tls-ca).
    #[arg(long, env = "STRATA_CONTROLLER_TLS_CERT", value_name = "FILE")]
    pub controller_tls_cert: Option<PathBuf>,
    /// PEM private key of --controller-tls-cert.
    #[arg(long, env = "STRATA_CONTROLLER_TLS_KEY", value_name = "FILE")]
    pub controller_tls_key: Option<PathBuf>,
    /// PEM CA bundle that signed every node certificate; a peer without such a certificate is refused.
    #[arg(long, env = "STRATA_CONTROLLER_TLS_CA", value_name = "FILE")]
    pub controller_tls_ca: Option<PathBuf>,
}

impl NodeTlsArgs {
    /// Flags over the file.
    pub fn apply(&self, c: &mut crate::config::Config) {
        for (dst, src) in [
            (&mut c.controller_tls_cert, &self.controller_tls_cert),
            (&mut c.controller_tls_key, &self.controller_tls_key),
            (&mut c.controller_tls_ca, &self.controller_tls_ca),
        ] {
            if src.is_some() {
                *dst = src.clone();
            }
        }
    }

    /// The files, when node TLS is configured; the three flags go together.
    pub fn files(&self) -> Result<Option<TlsFiles>, TlsError> {
        match (
            &self.controller_tls_cert,
            &self.controller_tls_key,
            &self.controller_tls_ca,
        ) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: Some(ca.clone()),
                flags: FLAGS,
            })),
            _ => Err(TlsError::Incomplete {
                flags: "--controller-tls-cert, --controller-tls-key and --controller-tls-ca",
            }),
        }
    }
}

/// The node's TLS: the server side of the controller API and the client
/// config every call to a controller uses.
pub struct NodeTls {
    pub server: Arc<TlsReloader>,
    pub client: rustls::ClientConfig,
}

static NODE_TLS: OnceLock<NodeTls> = OnceLock::new();

/// Load the node TLS files and use them for every controller call of
/// this process from now on; `None` keeps plain HTTP. An unusable file
/// names its flag. Call once, before the first controller client exists.
pub fn install(files: Option<TlsFiles>) -> Result<(), TlsError> {
    let Some(files) = files else {
        return Ok(());
    };
    let server = TlsReloader::new(files.clone())?;
    let (chain, key) = tls::identity(&files)?;
    let ca = files.client_ca.clone().unwrap_or_default();
    let roots = tls::roots(FLAGS.client_ca, &ca)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid {
            flag: FLAGS.cert,
            path: files.cert.clone(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls::mismatch(&files, e))?;
    let _ = NODE_TLS.set(NodeTls { server, client });
    Ok(())
}

/// The node TLS of this process, if installed.
pub fn get() -> Option<&'static NodeTls> {
    NODE_TLS.get()
}

/// Failed TLS handshakes on the controller port.
pub static HANDSHAKE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// A TLS listener for `axum::serve`: connections are accepted and their
/// handshakes run in their own tasks (a slow or failing client never holds
/// the others back); only finished handshakes are handed on.
pub struct TlsListener {
    rx: mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    pub fn new(
        listener: TcpListener,
        tls: Arc<TlsReloader>,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<TlsListener> {
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(tls.clone().watch(shutdown.clone()));
        let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                    _ = shutdown.changed() => return,
                };
                let (stream, peer) = tokio::select! {
                    r = listener.accept() => match r {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "controller API: accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = shutdown.changed() => return,
                };
                let acceptor = tls.acceptor();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        Ok(Err(e)) => {
                            HANDSHAKE_FAILURES.fetch_add(1, Relaxed);
                            tracing::debug!(%peer, error = %e, "controller API: TLS handshake refused");
                        }
                        Err(_) => {
                            HANDSHAKE_FAILURES.fetch_add(1, Relaxed);
                            tracing::debug!(%peer, "controller API: TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Ok(TlsListener { rx, addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop ended (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

//! The HTTP accept loop: bounded connections, and a timeout on reading
//! request headers that also closes idle keep-alive connections, so no
//! client can hold a connection (or a connection slot) forever.
//! (`axum::serve` has neither knob.) With `--http-tls-cert` it serves
//! HTTPS (rustls, certificates reloaded when the files change); with
//! `--http-tls-client-ca` a client certificate is required and its
//! subject CN is the request's principal (`access::ClientCert`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::auth::tls::TlsReloader;

/// Longest TLS handshake of an HTTPS connection.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `app` until `shutdown` flips; in-flight requests then finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: watch::Receiver<bool>,
    idle_timeout: Duration,
    max_connections: usize,
) {
    serve_tls(listener, app, shutdown, idle_timeout, max_connections, None).await
}

/// [`serve`], over TLS when `tls` is given.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
    idle_timeout: Duration,
    max_connections: usize,
    tls: Option<Arc<TlsReloader>>,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut conns = tokio::task::JoinSet::new();
    if let Some(t) = &tls {
        conns.spawn(t.clone().watch(shutdown.clone()));
    }
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("http connection limit reached; refusing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let sd = shutdown.clone();
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        conns.spawn(async move {
            match acceptor {
                None => connection(stream, app, peer, None, idle_timeout, sd).await,
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                crate::auth::metrics()
                                    .tls_handshake_failures
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                tracing::debug!(peer = %peer, error = %e, "https handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let cert = crate::auth::tls::certificate_principal(
                        tls.get_ref().1.peer_certificates(),
                    );
                    connection(tls, app, peer, cert, idle_timeout, sd).await
                }
            }
            drop(permit);
        });
        // Reap finished connections so the set stays small.
        while conns.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

/// Serve one connection; requests carry the peer address and the client
/// certificate's principal as extensions.
async fn connection<S>(
    io: S,
    app: Router,
    peer: SocketAddr,
    cert: Option<String>,
    idle_timeout: Duration,
    mut sd: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = TowerToHyperService::new(tower::util::MapRequest::new(
        app,
        move |mut r: hyper::Request<hyper::body::Incoming>| {
            r.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            if let Some(c) = &cert {
                r.extensions_mut()
                    .insert(super::access::ClientCert(c.clone()));
            }
            r
        },
    ));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = sd.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(10), conn.as_mut()).await;
        }
    }
}

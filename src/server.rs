//! `strata serve`: open the broker, bind the listeners, run until SIGTERM or
//! SIGINT, then stop accepting, drain, fsync and snapshot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::{Broker, BrokerError};
use crate::clock::SystemClock;
use crate::config::Config;

/// Startup and shutdown failures.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Store(#[from] crate::objstore::StoreError),
    #[error(transparent)]
    Controller(#[from] crate::controller::ControllerError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Security(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Tls(#[from] crate::auth::tls::TlsError),
    #[error("node TLS: {0}")]
    NodeTls(String),
}

/// Run the roles of `config` until `stop` resolves.
pub async fn run(
    config: Config,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // The stop request is watched from the start: one arriving while the
    // node is still starting (a controller out of reach, a long recovery)
    // ends the start at once, as a crash would, with nothing served yet;
    // once started, the roles shut down cleanly.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    let stop = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let (started_tx, started_rx) = watch::channel(false);
    let stopped_while_starting = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
            if *started_rx.borrow() {
                std::future::pending::<()>().await;
            }
        }
    };
    let (ctl_tx, ctl_rx) = watch::channel(false);
    // Node TLS first: every controller client made from here on uses it.
    let node_tls = config.node_tls().files()?;
    tokio::task::spawn_blocking(move || crate::controller::tls::install(node_tls))
        .await
        .map_err(|e| ServeError::NodeTls(e.to_string()))??;
    let controller = if config.is_controller() {
        let cc = config.controller_config()?;
        let single = cc.voters.len() == 1 && cc.voters.contains_key(&cc.node_id);
        crate::controller::upgrade::check_quorum_start(&cc.meta_dir, single)?;
        let meta_dir = cc.meta_dir.clone();
        let mut rx = stop_rx.clone();
        tokio::select! {
            c = crate::controller::Controller::start(cc, ctl_rx.clone()) => Some((c?, meta_dir)),
            _ = rx.wait_for(|s| *s) => {
                tracing::info!("stop requested while starting; exiting");
                return Ok(());
            }
        }
    } else {
        None
    };
    // The leader's bootstrap duties (cluster id, import of an earlier
    // release's metadata); a failure there stops the process.
    let boot_failed = {
        let boot = controller.as_ref().map(|(c, dir)| {
            tokio::spawn(crate::controller::upgrade::bootstrap(
                c.clone(),
                dir.clone(),
                ctl_rx.clone(),
            ))
        });
        async move {
            match boot {
                Some(b) => match b.await {
                    Ok(Err(e)) => e,
                    _ => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        }
    };
    let result = tokio::select! {
        r = async {
            match &controller {
                Some((c, _)) if !config.is_broker() => {
                    run_controller_only(&config, c.clone(), started_tx, stop).await
                }
                _ => {
                    let metadata = match &controller {
                        Some((c, _)) => crate::controller::Metadata::local(c.clone()),
                        None => crate::controller::Metadata::remote(
                            config.voters()?.into_values().collect(),
                            std::time::Duration::from_millis(config.controller_request_timeout_ms),
                            ctl_rx.clone(),
                        ),
                    };
                    run_broker(config.clone(), metadata, started_tx, stop).await
                }
            }
        } => r,
        e = boot_failed => Err(e.into()),
        _ = stopped_while_starting => {
            tracing::info!("stop requested while starting; exiting");
            Ok(())
        }
    };
    let _ = ctl_tx.send(true);
    if let Some((c, _)) = controller {
        c.shutdown().await;
    }
    result
}

/// A controller-only node: the controller API plus health, readiness
/// (a leader is known) and metrics over HTTP.
async fn run_controller_only(
    config: &Config,
    controller: Arc<crate::controller::Controller>,
    started: watch::Sender<bool>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let http_addr = config.http_listen;
    let http = bind("http", http_addr).await?;
    let (sd_tx, sd_rx) = watch::channel(false);
    let app = crate::http::controller_router(controller.clone());
    let idle = std::time::Duration::from_millis(config.http_idle_timeout_ms);
    let max = config.max_connections;
    let task = tokio::spawn(async move {
        crate::http::serve::serve(http, app, sd_rx, idle, max).await;
    });
    println!(
        "strata listening: controller={} (node {}) http={} meta={}",
        config.controller_listen,
        controller.node_id,
        http_addr,
        config.meta_dir().display()
    );
    let _ = started.send(true);
    stop.await;
    tracing::info!("shutting down");
    let _ = sd_tx.send(true);
    let _ = task.await;
    Ok(())
}

/// The broker role (with or without a controller in the same process).
async fn run_broker(
    config: Config,
    metadata: crate::controller::Metadata,
    started: watch::Sender<bool>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let http_addr = config.http_listen;
    let listeners = crate::auth::config::listeners(&config)
        .map_err(|(key, message)| crate::config::ConfigError::Invalid { key, message })?;
    let tls = crate::auth::tls_for(&config, &listeners)?;
    let security = crate::auth::Security::start(&config, Arc::new(SystemClock)).await?;
    let http_tls = crate::auth::http_tls_for(&config)?;
    let mut kafka = Vec::with_capacity(listeners.len());
    for l in &listeners {
        kafka.push((l.clone(), bind("kafka", l.bind).await?));
    }
    let http = bind("http", http_addr).await?;
    // The HTTP port answers from now on (503 "starting" until the broker
    // serves, see `http::starting_router`).
    let (sd_tx, sd_rx) = watch::channel(false);
    let http_app = Arc::new(std::sync::OnceLock::new());
    let http_task = {
        let app = crate::http::starting_router(http_app.clone());
        let sd = sd_rx.clone();
        let idle = std::time::Duration::from_millis(config.http_idle_timeout_ms);
        let max_conns = config.max_connections;
        tokio::spawn(async move {
            crate::http::serve::serve_tls(http, app, sd, idle, max_conns, http_tls).await;
        })
    };
    let store = Arc::new(crate::objstore::Store::open(&config.store_config()).await?);
    let broker = Broker::open(config.clone(), Arc::new(SystemClock), store, metadata).await?;
    // Users created with `strata user set` on the stopped node exist
    // before any Kafka connection is accepted.
    crate::auth::bootstrap::apply_pending(&config.meta_dir(), |c| {
        let b = broker.clone();
        async move { b.submit(c).await }
    })
    .await
    .map_err(crate::auth::AuthError::from)?;
    crate::auth::publish_listeners(&broker, &listeners).await;
    // Reconcile local logs with object storage before serving anything.
    let (hb_tx, hb_rx) = watch::channel(false);
    tokio::spawn(broker.clone().run_heartbeats(hb_rx.clone()));
    tokio::spawn(crate::txn::TxnCoordinator::run(broker.clone(), hb_rx));
    broker.recover_tier().await?;
    let (bg_tx, bg_rx) = watch::channel(false);
    let wal_task = broker.wal().start(
        broker.clone(),
        broker.store().clone(),
        broker.broker_id,
        broker.broker_epoch(),
        bg_rx.clone(),
    );
    let jobs_task = crate::tier::start_jobs(broker.clone(), bg_rx.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let _ = http_app.set(crate::http::router(crate::http::HttpState {
        broker: broker.clone(),
        ready: ready.clone(),
        security: security.clone(),
    }));
    broker.groups.start(broker.clone(), sd_rx.clone());
    let kafka_task = tokio::spawn(crate::auth::serve_all(
        broker.clone(),
        kafka,
        tls,
        security,
        sd_rx.clone(),
    ));
    ready.store(true, Ordering::Release);
    let k = listeners[0].bind;
    println!(
        "strata listening: kafka={} (advertised {}:{}) http={} data={} objects={} broker_id={} cluster_id={}",
        k,
        listeners[0].advertised_host,
        listeners[0].advertised_port,
        http_addr,
        config.data_dir.display(),
        config.object_store_url(),
        broker.broker_id,
        broker.cluster_id
    );
    for l in &listeners[1..] {
        println!(
            "strata listening: {}={} (advertised {}:{})",
            l.name, l.bind, l.advertised_host, l.advertised_port
        );
    }
    tracing::info!(kafka = %k, http = %http_addr, data = %config.data_dir.display(), "strata started");
    let _ = started.send(true);
    stop.await;
    tracing::info!("shutting down");
    ready.store(false, Ordering::Release);
    broker.begin_shutdown();
    let _ = sd_tx.send(true);
    let _ = kafka_task.await;
    // Connections stop reading at shutdown and finish writing the responses
    // of requests already read; wait for them (bounded) before the final fsync.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while broker.metrics.connections.load(Ordering::Acquire) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = http_task.await;
    // Final WAL flush (everything appended is now queued), then stop jobs.
    let _ = bg_tx.send(true);
    let _ = wal_task.await;
    let _ = jobs_task.await;
    // Hand leadership off at once (controlled shutdown): everything
    // appended is committed, so the next leader starts where this one ends.
    broker.drain().await;
    let _ = hb_tx.send(true);
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.shutdown())
        .await
        .map_err(|e| BrokerError::Io(std::io::Error::other(e.to_string())))??;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn bind(what: &'static str, addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { what, addr, source })
}

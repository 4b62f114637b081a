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
}

/// Run the broker until `stop` resolves.
pub async fn run(
    config: Config,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let kafka_addr = config.kafka_listen;
    let http_addr = config.http_listen;
    let kafka = TcpListener::bind(kafka_addr)
        .await
        .map_err(|source| ServeError::Bind {
            what: "kafka",
            addr: kafka_addr,
            source,
        })?;
    let http = TcpListener::bind(http_addr)
        .await
        .map_err(|source| ServeError::Bind {
            what: "http",
            addr: http_addr,
            source,
        })?;
    let store = Arc::new(crate::objstore::Store::open(&config.store_config()).await?);
    let cfg = config.clone();
    let broker =
        tokio::task::spawn_blocking(move || Broker::open(cfg, Arc::new(SystemClock), store))
            .await
            .map_err(|e| BrokerError::Io(std::io::Error::other(e.to_string())))??;
    // Reconcile local logs with object storage before serving anything.
    broker.recover_tier().await?;
    let (bg_tx, bg_rx) = watch::channel(false);
    let wal_task = broker.wal().start(
        broker.clone(),
        broker.store().clone(),
        broker.broker_id,
        broker.broker_epoch,
        bg_rx.clone(),
    );
    let jobs_task = crate::tier::start_jobs(broker.clone(), bg_rx.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let (sd_tx, sd_rx) = watch::channel(false);

    let http_state = crate::http::HttpState {
        broker: broker.clone(),
        ready: ready.clone(),
    };
    let http_sd = sd_rx.clone();
    let http_idle = std::time::Duration::from_millis(config.http_idle_timeout_ms);
    let http_max_conns = config.max_connections;
    let http_task = tokio::spawn(async move {
        let app = crate::http::router(http_state);
        crate::http::serve::serve(http, app, http_sd, http_idle, http_max_conns).await;
    });
    broker.groups.start(broker.clone(), sd_rx.clone());
    let kafka_task = tokio::spawn(crate::kafka::server::serve(
        broker.clone(),
        kafka,
        sd_rx.clone(),
    ));
    ready.store(true, Ordering::Release);
    let k = kafka_listener_addr(&config);
    println!(
        "strata listening: kafka={} (advertised {}:{}) http={} data={} objects={} broker_id={} cluster_id={}",
        k,
        config.advertised_host,
        config.advertised_port(),
        http_addr,
        config.data_dir.display(),
        config.object_store_url(),
        broker.broker_id,
        broker.cluster_id
    );
    tracing::info!(kafka = %k, http = %http_addr, data = %config.data_dir.display(), "strata started");

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
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.shutdown())
        .await
        .map_err(|e| BrokerError::Io(std::io::Error::other(e.to_string())))??;
    tracing::info!("stopped cleanly");
    Ok(())
}

fn kafka_listener_addr(c: &Config) -> std::net::SocketAddr {
    c.kafka_listen
}

//! A single-voter controller on a temporary directory, for tests that need
//! a real metadata seam.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Controller, ControllerConfig, Metadata};

/// A running single-node controller; stops when dropped.
pub struct SingleNode {
    pub controller: Arc<Controller>,
    pub metadata: Metadata,
    stop: watch::Sender<bool>,
}

impl SingleNode {
    /// Starts a controller in `dir` on an ephemeral loopback port and waits
    /// until the cluster has its id.
    pub async fn start(dir: &Path) -> SingleNode {
        let (stop, rx) = watch::channel(false);
        let cfg = ControllerConfig {
            node_id: 1,
            dir: dir.join("raft"),
            meta_dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("static addr"),
            voters: [(1, "127.0.0.1:1".to_string())].into(),
            join: false,
            snapshot_every: 1024,
            request_timeout: Duration::from_secs(10),
            broker_lease: Duration::from_secs(60),
        };
        let controller = Controller::start(cfg, rx.clone())
            .await
            .expect("controller");
        tokio::spawn(super::upgrade::bootstrap(
            controller.clone(),
            dir.to_path_buf(),
            rx,
        ));
        let metadata = Metadata::local(controller.clone());
        let mut w = metadata.watch();
        tokio::time::timeout(
            Duration::from_secs(20),
            w.wait_for(|v| !v.cluster_id.is_empty()),
        )
        .await
        .expect("cluster id in time")
        .expect("view");
        SingleNode {
            controller,
            metadata,
            stop,
        }
    }
}

impl Drop for SingleNode {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

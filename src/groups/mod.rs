//! Consumer group coordination (membership, rebalancing, committed offsets).
//! Membership is soft state held here by the coordinating broker; committed
//! offsets are durable in the metadata state machine (`meta::groups`).

use std::sync::Arc;

use tokio::sync::watch;

use crate::broker::Broker;

/// The group coordinator of this broker.
#[derive(Debug, Default)]
pub struct Coordinator {}

impl Coordinator {
    /// A coordinator with no groups loaded.
    pub fn new(_config: &crate::config::Config) -> Coordinator {
        Coordinator {}
    }

    /// Start background work (session expiry, offset retention) until
    /// `shutdown` flips.
    pub fn start(&self, _broker: Arc<Broker>, _shutdown: watch::Receiver<bool>) {}
}

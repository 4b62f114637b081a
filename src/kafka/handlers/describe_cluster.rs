//! DescribeCluster: this broker and the cluster id.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::sb;
use crate::kafka::Ctx;

pub fn handle(ctx: &Ctx, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let b = &ctx.broker;
    let meta = b.meta();
    let brokers = meta
        .brokers
        .values()
        // Fenced brokers (dead or left) are not offered to clients.
        .filter(|bi| !bi.fenced)
        .map(|bi| {
            let (host, port) = crate::auth::advertised(&ctx.session, &meta, b.broker_id, bi);
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(bi.broker_id))
                .with_host(sb(host))
                .with_port(port)
                .with_rack(bi.rack.clone().map(sb))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(sb(b.cluster_id.clone()))
        .with_controller_id(BrokerId(b.broker_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN)
}

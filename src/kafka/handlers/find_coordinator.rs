//! FindCoordinator: which broker coordinates a group (v0-3: one key,
//! v4+: a batch). Placement is `groups::Coordinator::coordinator_for`.
//! Transaction coordinators are placed the same way (see `crate::txn`).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::sb;
use crate::groups::codes;
use crate::kafka::Ctx;

/// Key types of FindCoordinator.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

struct Found {
    node: i32,
    host: String,
    port: i32,
    code: i16,
    message: Option<String>,
}

fn lookup(ctx: &Ctx, key_type: i8, key: &str) -> Found {
    let refuse = |code, message: &str| Found {
        node: -1,
        host: String::new(),
        port: -1,
        code,
        message: Some(message.to_string()),
    };
    match key_type {
        KEY_GROUP | KEY_TRANSACTION => {}
        _ => return refuse(codes::INVALID_REQUEST, "unknown coordinator key type"),
    }
    let node = ctx.broker.groups.coordinator_for(key);
    let meta = ctx.broker.meta();
    match meta.brokers.get(&node) {
        Some(b) => Found {
            node,
            host: crate::auth::advertised(&ctx.session, &meta, ctx.broker.broker_id, b).0,
            port: crate::auth::advertised(&ctx.session, &meta, ctx.broker.broker_id, b).1,
            code: codes::NONE,
            message: None,
        },
        None => refuse(
            codes::COORDINATOR_NOT_AVAILABLE,
            "the coordinating broker is not registered",
        ),
    }
}

pub fn handle(ctx: &Ctx, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let key_type = if ctx.version >= 1 {
        req.key_type
    } else {
        KEY_GROUP
    };
    if ctx.version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let f = lookup(ctx, key_type, k);
                Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(f.node))
                    .with_host(sb(f.host))
                    .with_port(f.port)
                    .with_error_code(f.code)
                    .with_error_message(f.message.map(sb))
            })
            .collect();
        return FindCoordinatorResponse::default()
            .with_error_message(None)
            .with_coordinators(coordinators);
    }
    let f = lookup(ctx, key_type, &req.key);
    let r = FindCoordinatorResponse::default()
        .with_error_code(f.code)
        .with_node_id(BrokerId(f.node))
        .with_host(sb(f.host))
        .with_port(f.port);
    if ctx.version >= 1 {
        r.with_error_message(f.message.map(sb))
    } else {
        r.with_error_message(None)
    }
}

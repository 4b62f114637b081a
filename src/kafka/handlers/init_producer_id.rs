//! InitProducerId: idempotent producers get a fresh id (or an epoch bump,
//! KIP-360); transactional ones go to the transaction coordinator, which
//! fences older instances of the same `transactional.id`.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::kafka::{code, Ctx};

pub async fn handle(ctx: &Ctx, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let r = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(id) = req.transactional_id.as_ref().filter(|i| !i.0.is_empty()) {
        return match crate::txn::TxnCoordinator::init_producer(
            &ctx.broker,
            &id.0,
            req.transaction_timeout_ms,
        )
        .await
        {
            Ok((pid, epoch)) => r
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            Err(e) => {
                tracing::debug!(transactional_id = %id.0, error = %e, "InitProducerId refused");
                r.with_error_code(e.code)
            }
        };
    }
    // KIP-360: a producer that already has an id asks for an epoch bump.
    if req.producer_id.0 >= 0 {
        if req.producer_epoch < 0 {
            return r.with_error_code(code::INVALID_REQUEST);
        }
        if req.producer_epoch < i16::MAX - 1 {
            return r
                .with_producer_id(req.producer_id)
                .with_producer_epoch(req.producer_epoch + 1);
        }
    }
    match ctx.broker.allocate_producer_id().await {
        Ok(id) => r.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => r.with_error_code(e.kafka_code()),
    }
}

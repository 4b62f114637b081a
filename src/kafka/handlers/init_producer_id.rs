//! InitProducerId for idempotent producers. Transactional ids are refused
//! until transactions exist.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::kafka::{code, Ctx};

pub async fn handle(ctx: &Ctx, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let r = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return r.with_error_code(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
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

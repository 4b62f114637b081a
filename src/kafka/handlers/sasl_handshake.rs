//! SaslHandshake (v1): the client names its mechanism; the answer lists
//! the enabled ones. The exchange continues in SaslAuthenticate frames.

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

use super::sb;
use crate::kafka::Ctx;

pub fn handle(ctx: &Ctx, req: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let security = &ctx.session.security;
    let code = match ctx.session.handshake(&req.mechanism) {
        Ok(()) => 0,
        Err(r) => r.code,
    };
    SaslHandshakeResponse::default()
        .with_error_code(code)
        .with_mechanisms(security.mechanisms.iter().map(|m| sb(m.name())).collect())
}

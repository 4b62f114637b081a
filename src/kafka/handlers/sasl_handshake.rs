//! SaslHandshake (v0-v1): the client names its mechanism; the answer lists
//! the enabled ones. After v1 the exchange continues in SaslAuthenticate
//! frames, after v0 in raw length-prefixed tokens (see `kafka::server`).

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

use super::sb;
use crate::kafka::Ctx;

pub fn handle(ctx: &Ctx, req: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let security = &ctx.session.security;
    let code = match ctx.session.handshake(&req.mechanism, ctx.version) {
        Ok(()) => 0,
        Err(r) => r.code,
    };
    SaslHandshakeResponse::default()
        .with_error_code(code)
        .with_mechanisms(security.mechanisms.iter().map(|m| sb(m.name())).collect())
}

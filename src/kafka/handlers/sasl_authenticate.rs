//! SaslAuthenticate (v0-v2): one step of the exchange chosen in
//! SaslHandshake, checked against the credentials in the replicated
//! metadata. v1+ answers the session lifetime (KIP-368). A failure is
//! answered after a short delay (as Kafka's
//! `connection.failed.authentication.delay.ms`) and counted per address.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};

use super::sb;
use crate::kafka::Ctx;

/// Delay of a failed authentication's answer.
const FAILURE_DELAY: Duration = Duration::from_millis(100);

pub async fn handle(ctx: &Ctx, req: SaslAuthenticateRequest) -> SaslAuthenticateResponse {
    let meta = ctx.broker.meta();
    let lookup = |user: &str, m| meta.security.credential(user, m).cloned();
    match ctx.session.authenticate(&req.auth_bytes, lookup).await {
        Ok((bytes, lifetime)) => SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::from(bytes))
            .with_session_lifetime_ms(lifetime.unwrap_or(0)),
        Err(r) => {
            if r.code == crate::auth::code::SASL_AUTHENTICATION_FAILED {
                tokio::time::sleep(FAILURE_DELAY).await;
            }
            SaslAuthenticateResponse::default()
                .with_error_code(r.code)
                .with_error_message(Some(sb(r.message)))
        }
    }
}

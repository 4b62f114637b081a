//! Client quotas (Kafka's `producer_byte_rate`, `consumer_byte_rate`,
//! `request_percentage` per user, client id, their defaults and
//! combinations):
//!
//! - `state`: quota entities and values as replicated metadata
//!   ([`crate::meta::Command::Quota`]), Kafka's precedence between them
//! - `rate`: the sampled rate window and the throttle time it gives
//! - `manager`: enforcement on a broker (throttle time, connection muting)
//!   and per-client metrics

pub mod cli;
pub mod manager;
pub mod rate;
pub mod state;

pub use manager::{Mute, QuotaManager, Usage};
pub use rate::WindowConfig;
pub use state::{QuotaCommand, QuotaError, QuotasState};

/// Record a request's usage against the client's quotas, stamp the
/// throttle time on its response and mute the connection for that long
/// (the connection's hook).
pub fn after_request(
    b: &crate::broker::Broker,
    ctx: &crate::kafka::Ctx,
    mute: &Mute,
    usage: Usage,
    resp: Option<&mut kafka_protocol::messages::ResponseKind>,
) {
    let now = b.clock.now_ms();
    let meta = b.meta();
    // The principal is looked up only when some quota is set.
    let user = (!meta.quotas.is_empty()).then(|| user_of(&ctx.session));
    let t = b.quotas.record(
        &meta.quotas,
        user.as_deref().unwrap_or(manager::ANONYMOUS),
        ctx.client_id.as_deref(),
        usage,
        resp,
        now,
    );
    if t > 0 {
        mute.extend(now + t);
    }
}

/// The user a connection's quotas are looked up for: the authenticated
/// principal's name (`User:alice` is `alice`), or `ANONYMOUS` on a
/// listener without authentication, as in Kafka.
pub fn user_of(session: &crate::auth::Session) -> String {
    session
        .principal()
        .and_then(|p| p.strip_prefix("User:").map(str::to_string))
        .unwrap_or_else(|| manager::ANONYMOUS.to_string())
}

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
    let user = user_for(&meta.quotas, &ctx.session);
    let t = b.quotas.record(
        &meta.quotas,
        &user,
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
/// listener without authentication, as in Kafka. The principal is looked
/// up only when some quota is set.
pub fn user_for(
    quotas: &QuotasState,
    session: &crate::auth::Session,
) -> std::borrow::Cow<'static, str> {
    if quotas.is_empty() {
        return manager::ANONYMOUS.into();
    }
    session
        .principal()
        .and_then(|p| p.strip_prefix("User:").map(str::to_string))
        .map_or(manager::ANONYMOUS.into(), Into::into)
}

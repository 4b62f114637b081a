//! Security: listeners and their protocols, TLS, SASL authentication
//! (PLAIN, SCRAM-SHA-256/512) and the replicated credentials.
//!
//! - `listeners`: `--listeners` / `--advertised-listeners` in Kafka's syntax
//! - `tls`: rustls server config from PEM files, reloaded when they change
//! - `scram`: SCRAM credentials and the server side of the exchange (pure)
//! - `state`: credentials and advertised listeners in the replicated metadata
//! - `config`: the flags and their validation
//! - `bootstrap`: `strata user set` on a stopped node's data directory
//! - `oauth`: SASL/OAUTHBEARER and the JWT validation against a JWKS
//! - `http`: authentication of the HTTP API (basic, bearer, client
//!   certificates) onto the same principals and ACLs
//!
//! A connection carries a [`Session`]: the listener it arrived on and, once
//! SASL succeeded, its principal. Before that, on a SASL listener, only
//! ApiVersions and the SASL frames are served, each at most
//! [`PRE_AUTH_MAX_FRAME`] bytes (an unauthenticated peer cannot make the
//! broker allocate more).

pub mod acl;
pub mod authz;
pub mod bootstrap;
pub mod config;
pub mod http;
pub mod listeners;
pub mod oauth;
pub mod scram;
pub mod state;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use listeners::{Listener, SecurityProtocol};
use scram::{Credential, Mechanism, ScramError, ServerExchange};

/// Largest frame accepted before a SASL listener's connection has
/// authenticated (CVE-2022-34917: no unbounded pre-auth allocation).
pub const PRE_AUTH_MAX_FRAME: usize = 8 * 1024;

/// Kafka error codes of the SASL APIs.
pub mod code {
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    pub const ILLEGAL_SASL_STATE: i16 = 34;
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
    pub const RESOURCE_NOT_FOUND: i16 = 91;
    pub const DUPLICATE_RESOURCE: i16 = 92;
    pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
}

/// A SASL mechanism this broker speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMech {
    Plain,
    Scram(Mechanism),
    OAuthBearer,
}

impl SaslMech {
    pub fn parse(s: &str) -> Option<SaslMech> {
        if s.eq_ignore_ascii_case("PLAIN") {
            return Some(SaslMech::Plain);
        }
        if s.eq_ignore_ascii_case("OAUTHBEARER") {
            return Some(SaslMech::OAuthBearer);
        }
        Mechanism::parse(s).map(SaslMech::Scram)
    }

    pub fn name(self) -> &'static str {
        match self {
            SaslMech::Plain => "PLAIN",
            SaslMech::Scram(m) => m.name(),
            SaslMech::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// Counters of `/metrics` (process-wide; never labelled by user name).
#[derive(Default)]
pub struct AuthMetrics {
    pub success: AtomicU64,
    pub failure: AtomicU64,
    pub throttled: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub pre_auth_refused: AtomicU64,
}

static METRICS: std::sync::OnceLock<AuthMetrics> = std::sync::OnceLock::new();

/// The process's authentication counters.
pub fn metrics() -> &'static AuthMetrics {
    METRICS.get_or_init(AuthMetrics::default)
}

impl AuthMetrics {
    /// Append the counters in the exposition format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP strata_sasl_authentications_total SASL authentications, by result (throttled: refused by the per-address failure limit).\n# TYPE strata_sasl_authentications_total counter"
        );
        for (r, v) in [
            ("success", &self.success),
            ("failure", &self.failure),
            ("throttled", &self.throttled),
        ] {
            let _ = writeln!(
                out,
                "strata_sasl_authentications_total{{result=\"{r}\"}} {}",
                v.load(Relaxed)
            );
        }
        crate::metrics::write_metric(
            out,
            "strata_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed (no or untrusted client certificate, protocol errors).",
            self.tls_handshake_failures.load(Relaxed),
        );
        crate::metrics::write_metric(
            out,
            "strata_pre_auth_refused_total",
            "counter",
            "Connections closed for a request other than ApiVersions/SASL, or a frame above the cap, before authentication.",
            self.pre_auth_refused.load(Relaxed),
        );
    }
}

/// Failed authentications per client address, over a sliding minute:
/// beyond [`FailureLimiter::MAX_FAILURES`] the address is refused without
/// checking its credentials until the minute has passed. Bounded: at most
/// [`FailureLimiter::MAX_ADDRS`] addresses are tracked (the oldest are
/// dropped first).
pub struct FailureLimiter {
    inner: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    pub const MAX_FAILURES: u32 = 10;
    pub const WINDOW: Duration = Duration::from_secs(60);
    pub const MAX_ADDRS: usize = 10_000;

    pub fn new() -> FailureLimiter {
        FailureLimiter {
            inner: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may try now.
    pub fn allowed(&self, ip: IpAddr, now: Instant) -> bool {
        let m = self.inner.lock();
        match m.get(&ip) {
            Some((since, n)) => {
                now.duration_since(*since) >= Self::WINDOW || *n < Self::MAX_FAILURES
            }
            None => true,
        }
    }

    /// Count a failure of `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut m = self.inner.lock();
        if m.len() >= Self::MAX_ADDRS && !m.contains_key(&ip) {
            m.retain(|_, (since, _)| now.duration_since(*since) < Self::WINDOW);
            if m.len() >= Self::MAX_ADDRS {
                if let Some(oldest) = m.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k) {
                    m.remove(&oldest);
                }
            }
        }
        let e = m.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) >= Self::WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
    }
}

impl Default for FailureLimiter {
    fn default() -> Self {
        FailureLimiter::new()
    }
}

/// The broker-wide security settings the connections share.
pub struct Security {
    pub authorizer: acl::AuthorizerConfig,
    pub mechanisms: Vec<SaslMech>,
    pub session_lifetime: Option<Duration>,
    pub limiter: FailureLimiter,
    /// The JWT validator (`--sasl-oauthbearer-jwks`), for OAUTHBEARER and
    /// the HTTP API's bearer tokens.
    pub oauth: Option<Arc<oauth::OAuth>>,
}

impl Security {
    pub fn from_config(c: &crate::config::Config) -> Security {
        Security {
            authorizer: config::authorizer(c).unwrap_or_default(),
            mechanisms: config::mechanisms(c).unwrap_or_default(),
            session_lifetime: (c.sasl_session_lifetime_ms > 0)
                .then(|| Duration::from_millis(c.sasl_session_lifetime_ms)),
            limiter: FailureLimiter::new(),
            oauth: None,
        }
    }

    /// The settings of `c` with the JWKS loaded: a JWKS that cannot be
    /// read or used names its file or URL and stops startup.
    pub async fn start(
        c: &crate::config::Config,
        clock: crate::clock::SharedClock,
    ) -> Result<Arc<Security>, AuthError> {
        let mut s = Security::from_config(c);
        if let Some(src) = &c.sasl_oauthbearer_jwks {
            s.oauth = Some(
                oauth::OAuth::start(
                    oauth::JwksSource::parse(src),
                    config::oauth_expectations(c),
                    clock,
                    Duration::from_millis(c.sasl_oauthbearer_jwks_refresh_ms),
                )
                .await?,
            );
        }
        Ok(Arc::new(s))
    }
}

/// One Kafka listener as the connection layer sees it.
pub struct Endpoint {
    pub listener: Arc<Listener>,
    pub security: Arc<Security>,
    pub tls: Option<Arc<tls::TlsReloader>>,
}

impl Endpoint {
    /// The session of a connection accepted from `peer`.
    pub fn session(&self, peer: SocketAddr) -> Session {
        Session::new(self.listener.clone(), peer, self.security.clone())
    }

    /// The TLS acceptor with the current certificate (TLS listeners).
    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.as_ref().map(|t| t.acceptor())
    }

    /// Whether `api` may be served on `session` now: ApiVersions and the
    /// SASL frames always; anything else only once authenticated and
    /// before the SASL session expired.
    pub fn allowed(session: &Session, api: kafka_protocol::messages::ApiKey, now: Instant) -> bool {
        use kafka_protocol::messages::ApiKey;
        matches!(
            api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) || (session.authenticated() && !session.expired(now))
    }
}

/// Where the SASL exchange of a connection stands.
enum Stage {
    /// Waiting for SaslHandshake.
    Start,
    /// Mechanism chosen; waiting for its first SaslAuthenticate.
    Chosen(SaslMech),
    /// SCRAM server-first sent; waiting for client-final.
    ScramFinal(Box<ServerExchange>),
    /// Done (authenticated, or not a SASL listener).
    Done,
}

struct SessionState {
    stage: Stage,
    /// SaslHandshake v0: the exchange continues in raw length-prefixed
    /// tokens instead of SaslAuthenticate frames.
    raw: bool,
    principal: Option<String>,
    expires: Option<Instant>,
}

/// Per-connection security: the listener and the authenticated principal.
pub struct Session {
    pub listener: Arc<Listener>,
    pub peer: Option<SocketAddr>,
    pub security: Arc<Security>,
    state: Mutex<SessionState>,
}

/// Refusal of a SASL step: the Kafka error code and a message without secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct SaslRefusal {
    pub code: i16,
    pub message: String,
}

fn refuse(code: i16, message: impl Into<String>) -> SaslRefusal {
    SaslRefusal {
        code,
        message: message.into(),
    }
}

impl Session {
    /// A connection accepted on `listener`.
    pub fn new(listener: Arc<Listener>, peer: SocketAddr, security: Arc<Security>) -> Session {
        let sasl = listener.protocol.sasl();
        Session {
            listener,
            peer: Some(peer),
            security,
            state: Mutex::new(SessionState {
                stage: if sasl { Stage::Start } else { Stage::Done },
                raw: false,
                principal: (!sasl).then(|| "User:ANONYMOUS".to_string()),
                expires: None,
            }),
        }
    }

    /// The principal of the client certificate on an SSL listener with
    /// mutual TLS (see [`tls::certificate_principal`]), instead of
    /// `User:ANONYMOUS`. SASL listeners keep the SASL identity.
    pub fn set_certificate_principal(&self, principal: String) {
        if !self.listener.protocol.sasl() {
            self.state.lock().principal = Some(principal);
        }
    }

    /// In-process callers (the HTTP API): already authenticated.
    pub fn internal(principal: &str) -> Arc<Session> {
        Arc::new(Session {
            listener: Arc::new(Listener {
                name: "INTERNAL".into(),
                protocol: SecurityProtocol::Plaintext,
                bind: SocketAddr::from(([127, 0, 0, 1], 0)),
                advertised_host: String::new(),
                advertised_port: 0,
            }),
            peer: None,
            security: Arc::new(Security {
                authorizer: acl::AuthorizerConfig::default(),
                mechanisms: Vec::new(),
                session_lifetime: None,
                limiter: FailureLimiter::new(),
                oauth: None,
            }),
            state: Mutex::new(SessionState {
                stage: Stage::Done,
                raw: false,
                principal: Some(principal.to_string()),
                expires: None,
            }),
        })
    }

    /// An HTTP request authenticated as `principal` (or the anonymous
    /// one), authorized with the broker's settings.
    pub fn http(
        principal: &str,
        peer: Option<SocketAddr>,
        security: Arc<Security>,
    ) -> Arc<Session> {
        let s = Session::internal(principal);
        Arc::new(Session {
            listener: s.listener.clone(),
            peer,
            security,
            state: Mutex::new(SessionState {
                stage: Stage::Done,
                raw: false,
                principal: Some(principal.to_string()),
                expires: None,
            }),
        })
    }

    /// The principal (`User:NAME`), once authenticated.
    pub fn principal(&self) -> Option<String> {
        self.state.lock().principal.clone()
    }

    /// Requests other than ApiVersions and SASL are served.
    pub fn authenticated(&self) -> bool {
        self.state.lock().principal.is_some()
    }

    /// The SASL session has outlived its lifetime without re-authenticating.
    pub fn expired(&self, now: Instant) -> bool {
        self.state.lock().expires.is_some_and(|e| now >= e)
    }

    /// SaslHandshake: choose a mechanism. Allowed first and, for
    /// re-authentication (KIP-368), again after a successful login.
    pub fn handshake(&self, mechanism: &str, version: i16) -> Result<(), SaslRefusal> {
        let mut st = self.state.lock();
        if !self.listener.protocol.sasl() {
            return Err(refuse(
                code::ILLEGAL_SASL_STATE,
                format!("listener {} does not use SASL", self.listener.name),
            ));
        }
        if !matches!(st.stage, Stage::Start | Stage::Done) {
            return Err(refuse(
                code::ILLEGAL_SASL_STATE,
                "SaslHandshake during an exchange",
            ));
        }
        let Some(m) = SaslMech::parse(mechanism).filter(|m| self.security.mechanisms.contains(m))
        else {
            return Err(refuse(
                code::UNSUPPORTED_SASL_MECHANISM,
                format!("unsupported SASL mechanism {mechanism:?}"),
            ));
        };
        st.stage = Stage::Chosen(m);
        st.raw = version == 0;
        Ok(())
    }

    /// The next frame is a raw SASL token (after SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        let st = self.state.lock();
        st.raw && matches!(st.stage, Stage::Chosen(_) | Stage::ScramFinal(_))
    }

    /// One SaslAuthenticate step with the client's bytes; `lookup` reads a
    /// credential from the replicated metadata. Ok: the server's bytes and,
    /// when the login completed, the session lifetime in ms (0 = none).
    pub async fn authenticate(
        &self,
        token: &[u8],
        lookup: impl Fn(&str, Mechanism) -> Option<Credential>,
    ) -> Result<(Vec<u8>, Option<i64>), SaslRefusal> {
        let now = Instant::now();
        let ip = self.peer.map(|p| p.ip());
        let stage = std::mem::replace(&mut self.state.lock().stage, Stage::Done);
        let was_authenticated = self.state.lock().principal.clone();
        let fail = |message: String| {
            metrics().failure.fetch_add(1, Relaxed);
            if let Some(ip) = ip {
                self.security.limiter.failed(ip, now);
            }
            // Authentication failures reveal nothing beyond the mechanism.
            tracing::info!(peer = ?self.peer, %message, "SASL authentication failed");
            refuse(code::SASL_AUTHENTICATION_FAILED, message)
        };
        let st_reset = |stage| {
            self.state.lock().stage = stage;
        };
        match stage {
            Stage::Start | Stage::Done => {
                st_reset(if was_authenticated.is_some() {
                    Stage::Done
                } else {
                    Stage::Start
                });
                Err(refuse(
                    code::ILLEGAL_SASL_STATE,
                    "SaslAuthenticate before SaslHandshake",
                ))
            }
            Stage::Chosen(mech) => {
                if let Some(ip) = ip {
                    if !self.security.limiter.allowed(ip, now) {
                        metrics().throttled.fetch_add(1, Relaxed);
                        st_reset(Stage::Start);
                        return Err(refuse(
                            code::SASL_AUTHENTICATION_FAILED,
                            "too many failed authentications from this address; try again later",
                        ));
                    }
                }
                match mech {
                    SaslMech::Plain => {
                        let Some((user, password)) = parse_plain(token) else {
                            st_reset(Stage::Start);
                            return Err(fail("malformed SASL/PLAIN message".into()));
                        };
                        // PLAIN is checked against the user's SCRAM
                        // credential (the strongest one stored).
                        let cred = [Mechanism::Sha512, Mechanism::Sha256]
                            .into_iter()
                            .find_map(|m| lookup(&user, m).map(|c| (m, c)));
                        let password = password.to_vec();
                        let ok = match cred {
                            Some((m, c)) => {
                                tokio::task::spawn_blocking(move || c.verify_password(m, &password))
                                    .await
                                    .unwrap_or(false)
                            }
                            None => false,
                        };
                        if !ok {
                            st_reset(Stage::Start);
                            return Err(fail(
                                "Authentication failed: Invalid username or password".into(),
                            ));
                        }
                        self.login(&user, was_authenticated.as_deref(), now, None)
                            .map(|life| (Vec::new(), life))
                    }
                    SaslMech::OAuthBearer => {
                        st_reset(Stage::Start);
                        let Some(validator) = self.security.oauth.clone() else {
                            return Err(fail("OAUTHBEARER is not configured".into()));
                        };
                        let v = match oauth::parse_client_first(token)
                            .and_then(|t| validator.validate(t))
                        {
                            Ok(v) => v,
                            Err(e) => return Err(fail(format!("Authentication failed: {e}"))),
                        };
                        // The session ends when the token does (KIP-368).
                        let left = (v.expires_at - validator.now_secs()).max(1) as u64;
                        let user = v.principal.strip_prefix("User:").unwrap_or(&v.principal);
                        self.login(
                            user,
                            was_authenticated.as_deref(),
                            now,
                            Some(Duration::from_secs(left)),
                        )
                        .map(|life| (Vec::new(), life))
                    }
                    SaslMech::Scram(m) => {
                        let first = match scram::parse_client_first(token) {
                            Ok(f) => f,
                            Err(e) => {
                                st_reset(Stage::Start);
                                return Err(fail(format!("{e}")));
                            }
                        };
                        let cred = lookup(&first.user, m);
                        let (ex, reply) = ServerExchange::start(
                            m,
                            first,
                            cred,
                            &scram::server_nonce(),
                            scram::random_bytes(16),
                        );
                        st_reset(Stage::ScramFinal(Box::new(ex)));
                        Ok((reply.into_bytes(), None))
                    }
                }
            }
            Stage::ScramFinal(ex) => match ex.finish(token) {
                Ok(reply) => self
                    .login(ex.user(), was_authenticated.as_deref(), now, None)
                    .map(|life| (reply.into_bytes(), life)),
                Err(e) => {
                    st_reset(Stage::Start);
                    let message = match e {
                        ScramError::InvalidCredentials => format!(
                            "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                            ex.mechanism().name()
                        ),
                        other => other.to_string(),
                    };
                    Err(fail(message))
                }
            },
        }
    }

    fn login(
        &self,
        user: &str,
        before: Option<&str>,
        now: Instant,
        cap: Option<Duration>,
    ) -> Result<Option<i64>, SaslRefusal> {
        let principal = format!("User:{user}");
        let mut st = self.state.lock();
        if let Some(before) = before {
            // KIP-368: re-authentication keeps the principal.
            if before != principal {
                st.stage = Stage::Done;
                return Err(refuse(
                    code::SASL_AUTHENTICATION_FAILED,
                    "re-authentication must keep the same principal",
                ));
            }
        }
        metrics().success.fetch_add(1, Relaxed);
        st.principal = Some(principal);
        st.stage = Stage::Done;
        let lifetime = match (self.security.session_lifetime, cap) {
            (Some(l), Some(c)) => Some(l.min(c)),
            (l, c) => l.or(c),
        };
        st.expires = lifetime.map(|l| now + l);
        Ok(lifetime.map(|l| l.as_millis().min(i64::MAX as u128) as i64))
    }
}

/// `authzid NUL user NUL password` (RFC 4616); the authzid must be empty
/// or the user.
pub fn parse_plain(token: &[u8]) -> Option<(String, &[u8])> {
    let mut parts = token.splitn(3, |b| *b == 0);
    let authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let password = parts.next()?;
    if user.is_empty() || password.is_empty() || !state::valid_user(user) {
        return None;
    }
    if !authz.is_empty() && authz != user.as_bytes() {
        return None;
    }
    Some((user.to_string(), password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_message_parsing() {
        assert_eq!(
            parse_plain(b"\0alice\0secret"),
            Some(("alice".to_string(), &b"secret"[..]))
        );
        assert!(parse_plain(b"alice\0alice\0secret").is_some());
        for bad in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0\0pw",
            b"bob\0alice\0pw",
            b"\0alice\0",
        ] {
            assert!(parse_plain(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn limiter_blocks_after_the_limit_and_forgets_after_the_window() {
        let l = FailureLimiter::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t = Instant::now();
        for _ in 0..FailureLimiter::MAX_FAILURES {
            assert!(l.allowed(ip, t));
            l.failed(ip, t);
        }
        assert!(!l.allowed(ip, t));
        assert!(l.allowed("10.0.0.2".parse().unwrap(), t));
        assert!(l.allowed(ip, t + FailureLimiter::WINDOW));
    }

    fn session() -> Session {
        let listener = Arc::new(Listener {
            name: "SASL_PLAINTEXT".into(),
            protocol: SecurityProtocol::SaslPlaintext,
            bind: "127.0.0.1:1".parse().unwrap(),
            advertised_host: "h".into(),
            advertised_port: 1,
        });
        let security = Arc::new(Security {
            authorizer: acl::AuthorizerConfig::default(),
            mechanisms: vec![SaslMech::Plain, SaslMech::Scram(Mechanism::Sha256)],
            session_lifetime: Some(Duration::from_secs(60)),
            limiter: FailureLimiter::new(),
            oauth: None,
        });
        Session::new(listener, "127.0.0.1:5".parse().unwrap(), security)
    }

    #[tokio::test]
    async fn oauthbearer_login_with_the_lifetime_bounded_by_exp() {
        let signer = oauth::tests::Signer::new();
        let doc = serde_json::json!({"keys": [signer.jwk("k")]}).to_string();
        let keys = oauth::KeySet::parse(doc.as_bytes()).unwrap();
        let now_ms = 1_800_000_000_000;
        let clock = crate::clock::ManualClock::new(now_ms);
        let expect = oauth::Expectations {
            sub_claim: "sub".into(),
            ..Default::default()
        };
        let mut s = session();
        let security = Arc::new(Security {
            authorizer: acl::AuthorizerConfig::default(),
            mechanisms: vec![SaslMech::OAuthBearer],
            session_lifetime: Some(Duration::from_secs(60)),
            limiter: FailureLimiter::new(),
            oauth: Some(oauth::OAuth::fixed(keys, expect, clock)),
        });
        s.security = security;
        let now = now_ms / 1000;
        let token = |exp: i64| {
            let t = signer.sign(
                serde_json::json!({"alg": "ES256", "kid": "k"}),
                serde_json::json!({"sub": "carol", "exp": exp}),
            );
            format!("n,,\x01auth=Bearer {t}\x01\x01").into_bytes()
        };
        let none = |_: &str, _: Mechanism| None;
        s.handshake("OAUTHBEARER", 1).unwrap();
        let e = s.authenticate(&token(now - 3600), none).await.unwrap_err();
        assert_eq!(e.code, code::SASL_AUTHENTICATION_FAILED);
        assert!(e.message.contains("expired"), "{}", e.message);
        assert!(!s.authenticated());
        // A token expiring before the configured lifetime bounds the session.
        s.handshake("OAUTHBEARER", 1).unwrap();
        let (_, life) = s.authenticate(&token(now + 30), none).await.unwrap();
        assert_eq!(life, Some(30_000));
        assert_eq!(s.principal().as_deref(), Some("User:carol"));
        // A longer one is bounded by --sasl-session-lifetime-ms.
        s.handshake("OAUTHBEARER", 1).unwrap();
        let (_, life) = s.authenticate(&token(now + 600), none).await.unwrap();
        assert_eq!(life, Some(60_000));
    }

    #[tokio::test]
    async fn plain_login_against_a_scram_credential() {
        let cred = Credential::from_password(Mechanism::Sha256, b"pw", vec![1; 16], 4096);
        let lookup =
            |u: &str, m: Mechanism| (u == "alice" && m == Mechanism::Sha256).then(|| cred.clone());
        let s = session();
        assert!(!s.authenticated());
        assert_eq!(
            s.authenticate(b"\0alice\0pw", lookup)
                .await
                .unwrap_err()
                .code,
            code::ILLEGAL_SASL_STATE
        );
        assert_eq!(
            s.handshake("SCRAM-SHA-512", 1).unwrap_err().code,
            code::UNSUPPORTED_SASL_MECHANISM
        );
        s.handshake("PLAIN", 1).unwrap();
        assert_eq!(
            s.authenticate(b"\0alice\0wrong", lookup)
                .await
                .unwrap_err()
                .code,
            code::SASL_AUTHENTICATION_FAILED
        );
        assert!(!s.authenticated());
        s.handshake("PLAIN", 1).unwrap();
        let (_, life) = s.authenticate(b"\0alice\0pw", lookup).await.unwrap();
        assert_eq!(life, Some(60_000));
        assert_eq!(s.principal().as_deref(), Some("User:alice"));
        // Re-authentication as someone else is refused.
        s.handshake("PLAIN", 1).unwrap();
        assert!(s.authenticate(b"\0bob\0pw", lookup).await.is_err());
    }
}

/// Startup failures of the security layer (a bad TLS file, a pending
/// user the metadata refused): they stop the process.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    User(#[from] bootstrap::UserError),
    #[error(transparent)]
    Jwks(#[from] oauth::JwksError),
}

/// The TLS config of `c`, when a listener needs it or a certificate is
/// configured; a file that cannot be used names itself and stops startup.
pub fn tls_for(
    c: &crate::config::Config,
    listeners: &[Listener],
) -> Result<Option<Arc<tls::TlsReloader>>, AuthError> {
    let (Some(cert), Some(key)) = (&c.tls_cert, &c.tls_key) else {
        if listeners.iter().any(|l| l.protocol.tls()) {
            return Err(tls::TlsError::Missing.into());
        }
        return Ok(None);
    };
    Ok(Some(tls::TlsReloader::new(tls::TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: c.tls_client_ca.clone(),
        flags: tls::LISTENER_FLAGS,
    })?))
}

/// The TLS config of the HTTP listener (`--http-tls-*`), if HTTPS is on;
/// a file that cannot be used names itself and stops startup.
pub fn http_tls_for(c: &crate::config::Config) -> Result<Option<Arc<tls::TlsReloader>>, AuthError> {
    let (Some(cert), Some(key)) = (&c.http_tls_cert, &c.http_tls_key) else {
        return Ok(None);
    };
    Ok(Some(tls::TlsReloader::new(tls::TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: c.http_tls_client_ca.clone(),
        flags: tls::HTTP_FLAGS,
    })?))
}

/// Record this broker's listeners in the metadata, so every broker can
/// answer clients with the address of the listener they connected on.
pub async fn publish_listeners(broker: &crate::broker::Broker, listeners: &[Listener]) {
    let listeners: Vec<state::AdvertisedListener> = listeners
        .iter()
        .map(|l| state::AdvertisedListener {
            name: l.name.clone(),
            host: l.advertised_host.clone(),
            port: i32::from(l.advertised_port),
        })
        .collect();
    let current = broker
        .meta()
        .security
        .listeners
        .get(&broker.broker_id)
        .cloned();
    if current.as_ref() == Some(&listeners) {
        return;
    }
    let cmd = crate::meta::Command::Security(state::SecurityCommand::SetListeners {
        broker_id: broker.broker_id,
        listeners,
    });
    if let Err(e) = broker.submit(cmd).await {
        // Clients of other brokers then get this broker's registered address.
        tracing::warn!(error = %e, "cannot record the advertised listeners");
    }
}

/// The address to give a client connected on `session`'s listener for
/// broker `bi`: this broker's own listener, another broker's listener of
/// the same name, else its registered address.
pub fn advertised(
    session: &Session,
    meta: &crate::meta::MetaState,
    self_id: i32,
    bi: &crate::meta::BrokerInfo,
) -> (String, i32) {
    let l = &session.listener;
    if l.name == "INTERNAL" && l.advertised_port == 0 {
        return (bi.host.clone(), bi.port);
    }
    if bi.broker_id == self_id {
        return (l.advertised_host.clone(), i32::from(l.advertised_port));
    }
    match meta.security.listener(bi.broker_id, &l.name) {
        Some(a) => (a.host.clone(), a.port),
        None => (bi.host.clone(), bi.port),
    }
}

/// Serve every listener until shutdown (and reload TLS files meanwhile).
pub async fn serve_all(
    broker: Arc<crate::broker::Broker>,
    sockets: Vec<(Listener, tokio::net::TcpListener)>,
    tls: Option<Arc<tls::TlsReloader>>,
    security: Arc<Security>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let limit = Arc::new(tokio::sync::Semaphore::new(broker.config.max_connections));
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(t) = &tls {
        tasks.spawn(t.clone().watch(shutdown.clone()));
    }
    for (listener, socket) in sockets {
        let endpoint = Arc::new(Endpoint {
            tls: if listener.protocol.tls() {
                tls.clone()
            } else {
                None
            },
            listener: Arc::new(listener),
            security: security.clone(),
        });
        tasks.spawn(crate::kafka::server::serve(
            broker.clone(),
            socket,
            endpoint,
            limit.clone(),
            shutdown.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

/// One raw token of a SaslHandshake v0 exchange: the server's reply frame
/// (4-byte length + bytes), or `None` when authentication failed (the
/// connection is closed, as Kafka does for v0).
pub async fn raw_token(
    broker: &crate::broker::Broker,
    session: &Session,
    token: &[u8],
) -> Option<bytes::BytesMut> {
    use bytes::BufMut;
    let meta = broker.meta();
    let lookup = |user: &str, m| meta.security.credential(user, m).cloned();
    let (reply, _) = session.authenticate(token, lookup).await.ok()?;
    let mut out = bytes::BytesMut::with_capacity(4 + reply.len());
    out.put_i32(reply.len() as i32);
    out.put_slice(&reply);
    Some(out)
}

/// The authorizer's one check: may the request's principal perform
/// `operation` on the resource `(resource_type, name)`? Always true with
/// `--authorizer none`.
pub fn allowed(ctx: &crate::kafka::Ctx, operation: i8, resource_type: i8, name: &str) -> bool {
    session_allowed(&ctx.session, &ctx.broker, operation, resource_type, name)
}

/// [`allowed`] for a session outside a Kafka request (the HTTP API).
pub fn session_allowed(
    session: &Session,
    broker: &crate::broker::Broker,
    operation: i8,
    resource_type: i8,
    name: &str,
) -> bool {
    let cfg = &session.security.authorizer;
    if !cfg.enabled {
        return true;
    }
    let principal = session.principal().unwrap_or_default();
    let host = session
        .peer
        .map(|p| p.ip().to_string())
        .unwrap_or_else(|| "*".into());
    let meta = broker.meta();
    acl::decide(
        cfg,
        meta.security.acls.iter(),
        &principal,
        &host,
        operation,
        resource_type,
        name,
    )
}

/// `allowed` on the cluster resource.
pub fn allowed_cluster(ctx: &crate::kafka::Ctx, operation: i8) -> bool {
    allowed(ctx, operation, acl::resource::CLUSTER, acl::CLUSTER_NAME)
}

/// APIs whose handlers check ACLs per resource. With the ACL authorizer,
/// every other API is served only to principals allowed `ALL` on the
/// cluster (super users, or an explicit ACL); anyone else's request closes
/// the connection (fine-grained checks for them are not there yet).
pub fn checked_per_resource(api: kafka_protocol::messages::ApiKey) -> bool {
    use kafka_protocol::messages::ApiKey::*;
    matches!(
        api,
        ApiVersions
            | SaslHandshake
            | SaslAuthenticate
            | Produce
            | Fetch
            | ListOffsets
            | Metadata
            | CreateTopics
            | DeleteTopics
            | FindCoordinator
            | JoinGroup
            | SyncGroup
            | Heartbeat
            | LeaveGroup
            | ConsumerGroupHeartbeat
            | ConsumerGroupDescribe
            | OffsetCommit
            | OffsetFetch
            | InitProducerId
            | OffsetForLeaderEpoch
            | CreateAcls
            | DescribeAcls
            | DeleteAcls
            | AlterUserScramCredentials
            | DescribeUserScramCredentials
    )
}

/// The connection-level gate of the ACL authorizer (see
/// [`checked_per_resource`]).
pub fn api_allowed(ctx: &crate::kafka::Ctx, api: kafka_protocol::messages::ApiKey) -> bool {
    !ctx.session.security.authorizer.enabled
        || checked_per_resource(api)
        || allowed_cluster(ctx, acl::op::ALL)
}

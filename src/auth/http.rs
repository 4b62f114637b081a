//! Authentication of the HTTP API onto the Kafka principals: HTTP Basic
//! against the SCRAM credentials of the replicated metadata (the check
//! SASL/PLAIN makes), bearer JWTs against the OAUTHBEARER validator, and
//! client certificates (subject CN) on an HTTPS listener with a client CA.
//!
//! A successful Basic check is cached briefly (bounded), keyed by an HMAC
//! of the password under a per-process random key and by the credential
//! it was checked against, so a request does not cost 4096+ PBKDF2
//! iterations and a password change takes effect at once. Failures share
//! the SASL per-address limiter and counters; no secret is logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use parking_lot::Mutex;

use super::scram::{Credential, Mechanism};
use super::{metrics, Security, Session};

/// The HTTP API's authentication methods (`--http-auth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Methods {
    pub basic: bool,
    pub bearer: bool,
}

impl Methods {
    /// Some authentication is required.
    pub fn any(self) -> bool {
        self.basic || self.bearer
    }
}

/// How long a successful Basic check is reused.
pub const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);
/// Cached Basic checks at most.
pub const BASIC_CACHE_MAX: usize = 1024;
/// Longest `Authorization` header considered.
pub const MAX_AUTHORIZATION_BYTES: usize = super::oauth::MAX_TOKEN_BYTES + 16;

/// Why a request is not authenticated (answered 401, or 429 when throttled).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpAuthError {
    #[error("authentication required ({0})")]
    Missing(&'static str),
    #[error("unsupported Authorization scheme {0:?} (accepted: {1})")]
    Scheme(String, String),
    #[error("malformed Basic credentials")]
    MalformedBasic,
    #[error("invalid username or password")]
    BadPassword,
    #[error("invalid bearer token: {0}")]
    Token(#[from] super::oauth::TokenError),
    #[error("too many failed authentications from this address; try again later")]
    Throttled,
}

struct Cached {
    mac: hmac::Tag,
    stored_key: Vec<u8>,
    at: Instant,
}

/// The HTTP API's authenticator.
pub struct HttpAuth {
    pub methods: Methods,
    /// `/metrics` is authenticated too.
    pub metrics_auth: bool,
    /// The HTTPS listener requires client certificates.
    pub client_certs: bool,
    pub security: Arc<Security>,
    cache_key: hmac::Key,
    cache: Mutex<HashMap<String, Cached>>,
}

impl HttpAuth {
    pub fn new(
        methods: Methods,
        metrics_auth: bool,
        client_certs: bool,
        security: Arc<Security>,
    ) -> HttpAuth {
        HttpAuth {
            methods,
            metrics_auth,
            client_certs,
            security,
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &super::scram::random_bytes(32)),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Requests must carry an identity.
    pub fn required(&self) -> bool {
        self.methods.any() || self.client_certs
    }

    /// The `WWW-Authenticate` challenge of a 401.
    pub fn challenge(&self) -> String {
        let mut c = Vec::new();
        if self.methods.basic {
            c.push(r#"Basic realm="strata", charset="UTF-8""#);
        }
        if self.methods.bearer {
            c.push(r#"Bearer realm="strata""#);
        }
        if c.is_empty() {
            c.push(r#"Basic realm="strata""#);
        }
        c.join(", ")
    }

    fn accepted(&self) -> String {
        let mut a = Vec::new();
        if self.methods.basic {
            a.push("Basic");
        }
        if self.methods.bearer {
            a.push("Bearer");
        }
        a.join(", ")
    }

    /// The principal of a request: from its `Authorization` header, else
    /// its client certificate's principal. `lookup` reads a SCRAM
    /// credential of the replicated metadata.
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        cert_principal: Option<&str>,
        peer: Option<IpAddr>,
        lookup: impl Fn(&str, Mechanism) -> Option<Credential>,
    ) -> Result<String, HttpAuthError> {
        let Some(header) = authorization.filter(|_| self.methods.any()) else {
            return match cert_principal {
                Some(p) => Ok(p.to_string()),
                None => Err(HttpAuthError::Missing("no Authorization header")),
            };
        };
        let now = Instant::now();
        if let Some(ip) = peer {
            if !self.security.limiter.allowed(ip, now) {
                metrics().throttled.fetch_add(1, Relaxed);
                return Err(HttpAuthError::Throttled);
            }
        }
        let result = self.check(header, lookup).await;
        if let Err(e) = &result {
            metrics().failure.fetch_add(1, Relaxed);
            if let Some(ip) = peer {
                self.security.limiter.failed(ip, now);
            }
            tracing::info!(peer = ?peer, error = %e, "HTTP authentication failed");
        }
        result
    }

    async fn check(
        &self,
        header: &[u8],
        lookup: impl Fn(&str, Mechanism) -> Option<Credential>,
    ) -> Result<String, HttpAuthError> {
        let scheme_err = |s: &[u8]| {
            let s = String::from_utf8_lossy(&s[..s.len().min(16)]).into_owned();
            HttpAuthError::Scheme(s, self.accepted())
        };
        if header.len() > MAX_AUTHORIZATION_BYTES {
            return Err(HttpAuthError::Token(super::oauth::TokenError::TooLarge));
        }
        let text = std::str::from_utf8(header).map_err(|_| scheme_err(b"?"))?;
        let (scheme, rest) = text
            .split_once(' ')
            .ok_or_else(|| scheme_err(text.as_bytes()))?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") && self.methods.basic {
            let (user, password) = parse_basic(rest).ok_or(HttpAuthError::MalformedBasic)?;
            if self.basic(&user, password.as_bytes(), lookup).await {
                Ok(format!("User:{user}"))
            } else {
                Err(HttpAuthError::BadPassword)
            }
        } else if scheme.eq_ignore_ascii_case("bearer") && self.methods.bearer {
            let oauth = self
                .security
                .oauth
                .as_ref()
                .ok_or(HttpAuthError::Missing("no JWKS configured"))?;
            Ok(oauth.validate(rest)?.principal)
        } else {
            Err(scheme_err(scheme.as_bytes()))
        }
    }

    /// `user`'s password against its strongest SCRAM credential.
    async fn basic(
        &self,
        user: &str,
        password: &[u8],
        lookup: impl Fn(&str, Mechanism) -> Option<Credential>,
    ) -> bool {
        let Some((mech, cred)) = [Mechanism::Sha512, Mechanism::Sha256]
            .into_iter()
            .find_map(|m| lookup(user, m).map(|c| (m, c)))
        else {
            return false;
        };
        let mut ctx = hmac::Context::with_key(&self.cache_key);
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(password);
        let mac = ctx.sign();
        let now = Instant::now();
        if let Some(c) = self.cache.lock().get(user) {
            if now.duration_since(c.at) < BASIC_CACHE_TTL
                && constant_time::verify_slices_are_equal(&c.stored_key, &cred.stored_key).is_ok()
                && constant_time::verify_slices_are_equal(c.mac.as_ref(), mac.as_ref()).is_ok()
            {
                return true;
            }
        }
        let stored_key = cred.stored_key.clone();
        let password = password.to_vec();
        let ok = tokio::task::spawn_blocking(move || cred.verify_password(mech, &password))
            .await
            .unwrap_or(false);
        if ok {
            let mut cache = self.cache.lock();
            if cache.len() >= BASIC_CACHE_MAX && !cache.contains_key(user) {
                cache.retain(|_, c| now.duration_since(c.at) < BASIC_CACHE_TTL);
                if cache.len() >= BASIC_CACHE_MAX {
                    if let Some(oldest) = cache
                        .iter()
                        .min_by_key(|(_, c)| c.at)
                        .map(|(k, _)| k.clone())
                    {
                        cache.remove(&oldest);
                    }
                }
            }
            cache.insert(
                user.to_string(),
                Cached {
                    mac,
                    stored_key,
                    at: now,
                },
            );
        }
        ok
    }

    /// Entries of the Basic cache (tests, bounds).
    pub fn cached(&self) -> usize {
        self.cache.lock().len()
    }
}

/// `base64(user:password)` (RFC 7617).
pub fn parse_basic(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    (super::state::valid_user(user) && !password.is_empty())
        .then(|| (user.to_string(), password.to_string()))
}

tokio::task_local! {
    static SESSION: Arc<Session>;
}

/// Run `f` as `session` (an authenticated HTTP request): the in-process
/// Kafka calls it makes are authorized as its principal.
pub async fn scope<F: std::future::Future>(session: Arc<Session>, f: F) -> F::Output {
    SESSION.scope(session, f).await
}

/// The session of the HTTP request being served, if any.
pub fn current() -> Option<Arc<Session>> {
    SESSION.try_with(|s| s.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(methods: Methods) -> HttpAuth {
        HttpAuth::new(
            methods,
            false,
            false,
            Arc::new(Security::from_config(&crate::config::Config::default())),
        )
    }

    fn basic(user: &str, pw: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
        .into_bytes()
    }

    #[test]
    fn basic_header_parsing() {
        assert_eq!(
            parse_basic("YWxpY2U6cHc6d2l0aDpjb2xvbnM="),
            Some(("alice".into(), "pw:with:colons".into()))
        );
        for bad in ["", "!!", "YWxpY2U=", "OnB3", "YWxpY2U6"] {
            assert_eq!(parse_basic(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn basic_checks_the_scram_credential_and_caches_success_only() {
        let a = auth(Methods {
            basic: true,
            bearer: false,
        });
        let cred = Credential::from_password(Mechanism::Sha512, b"pw", vec![7; 16], 4096);
        let c2 = cred.clone();
        let lookup = move |u: &str, m: Mechanism| {
            (u == "alice" && m == Mechanism::Sha512).then(|| c2.clone())
        };
        let ip: IpAddr = "10.1.1.1".parse().unwrap();
        assert_eq!(
            a.authenticate(Some(&basic("alice", "pw")), None, Some(ip), &lookup)
                .await,
            Ok("User:alice".into())
        );
        assert_eq!(a.cached(), 1);
        // The cache does not accept another password.
        assert_eq!(
            a.authenticate(Some(&basic("alice", "px")), None, Some(ip), &lookup)
                .await,
            Err(HttpAuthError::BadPassword)
        );
        assert_eq!(
            a.authenticate(Some(&basic("bob", "pw")), None, Some(ip), &lookup)
                .await,
            Err(HttpAuthError::BadPassword)
        );
        // A changed credential invalidates the cached check.
        let newer = Credential::from_password(Mechanism::Sha512, b"new", vec![8; 16], 4096);
        let lookup2 = move |u: &str, m: Mechanism| {
            (u == "alice" && m == Mechanism::Sha512).then(|| newer.clone())
        };
        assert_eq!(
            a.authenticate(Some(&basic("alice", "pw")), None, None, &lookup2)
                .await,
            Err(HttpAuthError::BadPassword)
        );
        assert!(a
            .authenticate(Some(&basic("alice", "new")), None, None, &lookup2)
            .await
            .is_ok());
        // Bearer is not enabled; no header and no certificate is refused.
        assert!(matches!(
            a.authenticate(Some(b"Bearer x.y.z"), None, None, &lookup)
                .await,
            Err(HttpAuthError::Scheme(..))
        ));
        assert!(matches!(
            a.authenticate(None, None, None, &lookup).await,
            Err(HttpAuthError::Missing(_))
        ));
        assert_eq!(
            a.authenticate(None, Some("User:cn"), None, &lookup).await,
            Ok("User:cn".into())
        );
        assert!(a.challenge().starts_with("Basic realm="));
    }

    #[tokio::test]
    async fn failures_are_rate_limited_per_address() {
        let a = auth(Methods {
            basic: true,
            bearer: false,
        });
        let lookup = |_: &str, _: Mechanism| None;
        let ip: IpAddr = "10.2.2.2".parse().unwrap();
        for _ in 0..super::super::FailureLimiter::MAX_FAILURES {
            assert_eq!(
                a.authenticate(Some(&basic("x", "y")), None, Some(ip), lookup)
                    .await,
                Err(HttpAuthError::BadPassword)
            );
        }
        assert_eq!(
            a.authenticate(Some(&basic("x", "y")), None, Some(ip), lookup)
                .await,
            Err(HttpAuthError::Throttled)
        );
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let a = auth(Methods {
            basic: true,
            bearer: false,
        });
        let cred = Credential::from_password(Mechanism::Sha256, b"pw", vec![1; 16], 4096);
        let lookup = move |_: &str, m: Mechanism| (m == Mechanism::Sha256).then(|| cred.clone());
        for i in 0..BASIC_CACHE_MAX + 5 {
            assert!(a.basic(&format!("u{i}"), b"pw", &lookup).await);
        }
        assert_eq!(a.cached(), BASIC_CACHE_MAX);
    }
}

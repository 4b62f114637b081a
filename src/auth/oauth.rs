//! SASL/OAUTHBEARER (RFC 7628, KIP-255/KIP-768 semantics) and the JWT
//! validation it shares with the HTTP API's bearer authentication.
//!
//! - the client-first message `n,[a=authzid],\x01auth=Bearer <jwt>\x01[k=v\x01]*\x01`;
//! - a JWT signed with RS256/384/512, PS256/384/512, ES256 or ES384 by a key
//!   of the configured JWKS (`--sasl-oauthbearer-jwks`: a file, or an
//!   http(s) URL fetched at start and refreshed); `alg: none`, HMAC and keys
//!   of any other type are refused;
//! - `exp` required and checked, `nbf` checked, `iss` and `aud` checked
//!   when configured (with Kafka's 30 s clock skew), the principal
//!   `User:<sub>` from the configured claim.
//!
//! [`validate`] is pure (the keys, the expectations and the time are
//! passed in); [`OAuth`] holds the current keys and refreshes them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;

use crate::clock::SharedClock;

/// Largest JWKS document read (file or URL).
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Keys kept from one JWKS at most.
pub const MAX_KEYS: usize = 256;
/// Largest token accepted (the pre-authentication frame cap is lower on
/// Kafka listeners; this bounds the HTTP `Authorization` header too).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Kafka's `sasl.oauthbearer.clock.skew.seconds` default.
pub const CLOCK_SKEW_SECS: i64 = 30;
/// Longest time a JWKS URL may take to answer.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Signature algorithms accepted (asymmetric only).
const ACCEPTED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// A JWKS that cannot be used: names the file or URL. Stops startup.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot read --sasl-oauthbearer-jwks {source_name}: {message}")]
    Read {
        source_name: String,
        message: String,
    },
    #[error("--sasl-oauthbearer-jwks {source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
}

/// Why a token was refused. The messages carry claim values, never the
/// token itself.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token algorithm {0:?} is not accepted (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384)")]
    Algorithm(String),
    #[error("no key of the JWKS matches the token (kid {kid:?}, alg {alg})")]
    UnknownKey { kid: Option<String>, alg: String },
    #[error("invalid token signature")]
    Signature,
    #[error("token has no exp claim")]
    NoExpiry,
    #[error("token expired at {exp} (now {now}, unix seconds)")]
    Expired { exp: i64, now: i64 },
    #[error("token not valid before {nbf} (now {now}, unix seconds)")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("token issuer {got:?} is not the expected {want:?}")]
    Issuer { got: Option<String>, want: String },
    #[error("token audience {got:?} does not include any of {want:?}")]
    Audience { got: Vec<String>, want: Vec<String> },
    #[error("token has no usable {0:?} claim for the principal")]
    Subject(String),
}

/// What a token must carry besides a valid signature.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expectations {
    pub issuer: Option<String>,
    /// Any of these (empty: not checked).
    pub audiences: Vec<String>,
    /// The claim naming the principal (Kafka's `sasl.oauthbearer.sub.claim.name`).
    pub sub_claim: String,
}

/// A validated token.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// `User:<sub>`.
    pub principal: String,
    /// `exp`, unix seconds.
    pub expires_at: i64,
}

/// One usable key of a JWKS.
#[derive(Clone)]
pub struct Key {
    kid: Option<String>,
    /// The algorithm the key declares, if any.
    alg: Option<Algorithm>,
    rsa: bool,
    key: DecodingKey,
}

/// The keys of a JWKS document.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

// Public keys only, but the list is long: print the kids.
impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.kid))
            .finish()
    }
}

impl KeySet {
    /// Parse a JWKS document; keys that are not RSA or EC (or are
    /// malformed) are skipped, and at least one must remain.
    pub fn parse(doc: &[u8]) -> Result<KeySet, String> {
        if doc.len() > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        let v: serde_json::Value =
            serde_json::from_slice(doc).map_err(|e| format!("not JSON: {e}"))?;
        let keys = v
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("no \"keys\" array (expected a JWK Set, RFC 7517)")?;
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            if out.len() >= MAX_KEYS {
                return Err(format!("more than {MAX_KEYS} keys"));
            }
            match Self::key(k) {
                Ok(key) => out.push(key),
                Err(why) => skipped.push(format!("key {i}: {why}")),
            }
        }
        if out.is_empty() {
            return Err(format!(
                "no usable RSA or EC public key{}",
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", skipped.join("; "))
                }
            ));
        }
        if !skipped.is_empty() {
            tracing::warn!(skipped = %skipped.join("; "), "JWKS keys skipped");
        }
        Ok(KeySet { keys: out })
    }

    fn key(v: &serde_json::Value) -> Result<Key, String> {
        if v.get("use")
            .and_then(|u| u.as_str())
            .is_some_and(|u| u != "sig")
        {
            return Err("not a signature key (use != sig)".into());
        }
        let jwk: Jwk = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        let rsa = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => true,
            AlgorithmParameters::EllipticCurve(_) => false,
            AlgorithmParameters::OctetKey(_) => {
                return Err("symmetric (oct) keys are not accepted".into())
            }
            _ => return Err("only RSA and EC keys are accepted".into()),
        };
        let alg = match v.get("alg").and_then(|a| a.as_str()) {
            None => None,
            Some(a) => Some(
                a.parse::<Algorithm>()
                    .ok()
                    .filter(|a| ACCEPTED.contains(a))
                    .ok_or_else(|| format!("alg {a:?} is not accepted"))?,
            ),
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
        Ok(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            rsa,
            key,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn b64(part: &str) -> Result<Vec<u8>, TokenError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("not base64url".into()))
}

fn family_is_rsa(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::ES256 | Algorithm::ES384)
}

/// Validate `token` against `keys` and `expect` at `now` (unix seconds).
pub fn validate(
    keys: &KeySet,
    expect: &Expectations,
    token: &str,
    now: i64,
) -> Result<Validated, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(TokenError::Malformed(format!(
            "expected 3 dot-separated parts, got {}",
            parts.len()
        )));
    }
    // The header's alg is read before anything else, so `none` and HMAC
    // are refused by name (and never reach a verifier).
    let header: serde_json::Value = serde_json::from_slice(&b64(parts[0])?)
        .map_err(|_| TokenError::Malformed("header is not JSON".into()))?;
    let alg_name = header
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or_else(|| TokenError::Malformed("header has no alg".into()))?;
    let alg = alg_name
        .parse::<Algorithm>()
        .ok()
        .filter(|a| ACCEPTED.contains(a))
        .ok_or_else(|| TokenError::Algorithm(alg_name.to_string()))?;
    let kid = header
        .get("kid")
        .and_then(|k| k.as_str())
        .map(str::to_string);
    let candidates = keys.keys.iter().filter(|k| {
        k.rsa == family_is_rsa(alg)
            && k.alg.is_none_or(|a| a == alg)
            && (kid.is_none() || k.kid == kid)
    });
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let mut matched = false;
    let mut claims = None;
    for k in candidates {
        matched = true;
        match jsonwebtoken::decode::<serde_json::Value>(token, &k.key, &validation) {
            Ok(d) => {
                claims = Some(d.claims);
                break;
            }
            Err(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_)
                | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => continue,
                _ => return Err(TokenError::Malformed(e.to_string())),
            },
        }
    }
    if !matched {
        return Err(TokenError::UnknownKey {
            kid,
            alg: alg_name.to_string(),
        });
    }
    let claims = claims.ok_or(TokenError::Signature)?;
    check_claims(&claims, expect, now)
}

fn num(v: &serde_json::Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// The claim checks, after the signature.
fn check_claims(
    claims: &serde_json::Value,
    expect: &Expectations,
    now: i64,
) -> Result<Validated, TokenError> {
    let exp = claims
        .get("exp")
        .and_then(num)
        .ok_or(TokenError::NoExpiry)?;
    if exp <= now - CLOCK_SKEW_SECS {
        return Err(TokenError::Expired { exp, now });
    }
    if let Some(nbf) = claims.get("nbf").and_then(num) {
        if nbf > now + CLOCK_SKEW_SECS {
            return Err(TokenError::NotYetValid { nbf, now });
        }
    }
    if let Some(want) = &expect.issuer {
        let got = claims.get("iss").and_then(|i| i.as_str());
        if got != Some(want.as_str()) {
            return Err(TokenError::Issuer {
                got: got.map(str::to_string),
                want: want.clone(),
            });
        }
    }
    if !expect.audiences.is_empty() {
        let got: Vec<String> = match claims.get("aud") {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .take(64)
                .collect(),
            _ => Vec::new(),
        };
        if !got.iter().any(|a| expect.audiences.contains(a)) {
            return Err(TokenError::Audience {
                got,
                want: expect.audiences.clone(),
            });
        }
    }
    let sub = claims
        .get(&expect.sub_claim)
        .and_then(|s| s.as_str())
        .filter(|s| super::state::valid_user(s))
        .ok_or_else(|| TokenError::Subject(expect.sub_claim.clone()))?;
    Ok(Validated {
        principal: format!("User:{sub}"),
        expires_at: exp,
    })
}

/// The OAUTHBEARER client-first message (RFC 7628 §3.1): the bearer token.
pub fn parse_client_first(msg: &[u8]) -> Result<&str, TokenError> {
    let bad = |m: &str| TokenError::Malformed(format!("OAUTHBEARER client message: {m}"));
    let s = std::str::from_utf8(msg).map_err(|_| bad("not UTF-8"))?;
    // gs2-header: "n,," or "n,a=authzid,"; channel binding is not offered.
    let rest = s
        .strip_prefix("n,")
        .ok_or_else(|| bad("expected gs2 header \"n,\""))?;
    let (_authzid, rest) = rest.split_once(',').ok_or_else(|| bad("no gs2 header"))?;
    let body = rest
        .strip_prefix('\u{1}')
        .and_then(|r| r.strip_suffix("\u{1}\u{1}"))
        .ok_or_else(|| bad("expected \\x01-separated key/values ending in \\x01\\x01"))?;
    let mut token = None;
    for kv in body.split('\u{1}') {
        let (k, v) = kv.split_once('=').ok_or_else(|| bad("key without value"))?;
        if k == "auth" {
            let t = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .ok_or_else(|| bad("auth is not \"Bearer <token>\""))?;
            token = Some(t.trim());
        }
        // Other keys are SASL extensions (KIP-342): accepted and ignored.
    }
    token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no auth=Bearer token"))
}

/// Where the JWKS comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum JwksSource {
    File(PathBuf),
    Url(String),
}

impl JwksSource {
    pub fn parse(s: &str) -> JwksSource {
        if s.starts_with("https://") || s.starts_with("http://") {
            JwksSource::Url(s.to_string())
        } else {
            JwksSource::File(PathBuf::from(s.strip_prefix("file://").unwrap_or(s)))
        }
    }

    fn name(&self) -> String {
        match self {
            JwksSource::File(p) => p.display().to_string(),
            JwksSource::Url(u) => u.clone(),
        }
    }

    /// Read and parse the document (bounded size and time).
    pub async fn load(&self) -> Result<KeySet, JwksError> {
        let source_name = self.name();
        let read_err = |message: String| JwksError::Read {
            source_name: source_name.clone(),
            message,
        };
        let doc = match self {
            JwksSource::File(p) => {
                let p = p.clone();
                tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                    use std::io::Read;
                    let f = std::fs::File::open(&p)?;
                    let mut buf = Vec::new();
                    f.take(MAX_JWKS_BYTES as u64 + 1).read_to_end(&mut buf)?;
                    Ok(buf)
                })
                .await
                .map_err(|e| read_err(e.to_string()))?
                .map_err(|e| read_err(e.to_string()))?
            }
            JwksSource::Url(u) => fetch(u).await.map_err(read_err)?,
        };
        KeySet::parse(&doc).map_err(|message| JwksError::Invalid {
            source_name: source_name.clone(),
            message,
        })
    }
}

async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP status {}", resp.status()));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if buf.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// The JWT validator of the broker: the current keys (refreshed from their
/// source), the expectations and the clock.
pub struct OAuth {
    source: JwksSource,
    expect: Expectations,
    clock: SharedClock,
    keys: RwLock<Arc<KeySet>>,
}

impl OAuth {
    /// Load the JWKS once; an error names its file or URL and stops startup.
    pub async fn start(
        source: JwksSource,
        expect: Expectations,
        clock: SharedClock,
        refresh: Duration,
    ) -> Result<Arc<OAuth>, JwksError> {
        let keys = source.load().await?;
        tracing::info!(jwks = %source.name(), keys = keys.len(), "JWKS loaded");
        let me = Arc::new(OAuth {
            source,
            expect,
            clock,
            keys: RwLock::new(Arc::new(keys)),
        });
        if !refresh.is_zero() {
            let weak = Arc::downgrade(&me);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(refresh).await;
                    let Some(me) = weak.upgrade() else { return };
                    match me.source.load().await {
                        Ok(k) => *me.keys.write() = Arc::new(k),
                        // Keeping the previous keys: a JWKS endpoint that is
                        // briefly down must not lock every client out.
                        Err(e) => {
                            tracing::warn!(error = %e, "JWKS refresh failed; keeping the previous keys")
                        }
                    }
                }
            });
        }
        Ok(me)
    }

    /// A validator over fixed keys (tests).
    pub fn fixed(keys: KeySet, expect: Expectations, clock: SharedClock) -> Arc<OAuth> {
        Arc::new(OAuth {
            source: JwksSource::File(PathBuf::new()),
            expect,
            clock,
            keys: RwLock::new(Arc::new(keys)),
        })
    }

    /// Now, in unix seconds.
    pub fn now_secs(&self) -> i64 {
        self.clock.now_ms().div_euclid(1000)
    }

    /// Validate a bearer token now.
    pub fn validate(&self, token: &str) -> Result<Validated, TokenError> {
        let keys = self.keys.read().clone();
        validate(&keys, &self.expect, token, self.now_secs())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn enc(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    /// An ES256 key that signs test tokens.
    pub(crate) struct Signer {
        kp: EcdsaKeyPair,
    }

    impl Signer {
        pub(crate) fn new() -> Signer {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            Signer {
                kp: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                    .unwrap(),
            }
        }

        pub(crate) fn jwk(&self, kid: &str) -> serde_json::Value {
            let p = self.kp.public_key().as_ref();
            serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                "x": enc(&p[1..33]), "y": enc(&p[33..65])})
        }

        pub(crate) fn sign(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
            let msg = format!(
                "{}.{}",
                enc(header.to_string().as_bytes()),
                enc(claims.to_string().as_bytes())
            );
            let sig = self.kp.sign(&SystemRandom::new(), msg.as_bytes()).unwrap();
            format!("{msg}.{}", enc(sig.as_ref()))
        }
    }

    const NOW: i64 = 1_800_000_000;

    fn setup() -> (Signer, KeySet, Expectations) {
        let s = Signer::new();
        let doc = serde_json::json!({"keys": [s.jwk("k1"),
            {"kty": "oct", "k": enc(b"secret"), "kid": "hmac"}]});
        let keys = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1, "the oct key is skipped");
        let expect = Expectations {
            issuer: Some("https://issuer".into()),
            audiences: vec!["strata".into()],
            sub_claim: "sub".into(),
        };
        (s, keys, expect)
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({"sub": "alice", "iss": "https://issuer", "aud": ["x", "strata"],
            "exp": NOW + 600, "nbf": NOW - 10, "iat": NOW - 10})
    }

    fn hdr() -> serde_json::Value {
        serde_json::json!({"alg": "ES256", "kid": "k1", "typ": "JWT"})
    }

    #[test]
    fn a_valid_token_names_its_subject() {
        let (s, keys, expect) = setup();
        let v = validate(&keys, &expect, &s.sign(hdr(), claims()), NOW).unwrap();
        assert_eq!(v.principal, "User:alice");
        assert_eq!(v.expires_at, NOW + 600);
        // Without a kid the key is found by its type.
        let t = s.sign(serde_json::json!({"alg": "ES256"}), claims());
        assert!(validate(&keys, &expect, &t, NOW).is_ok());
        // Another claim as the principal.
        let mut c = claims();
        c["client_id"] = "svc-1".into();
        let e2 = Expectations {
            sub_claim: "client_id".into(),
            ..expect.clone()
        };
        assert_eq!(
            validate(&keys, &e2, &s.sign(hdr(), c), NOW)
                .unwrap()
                .principal,
            "User:svc-1"
        );
    }

    #[test]
    fn time_claims() {
        let (s, keys, expect) = setup();
        let t = s.sign(hdr(), claims());
        assert!(matches!(
            validate(&keys, &expect, &t, NOW + 600 + CLOCK_SKEW_SECS),
            Err(TokenError::Expired { .. })
        ));
        // Within the clock skew it is still valid.
        assert!(validate(&keys, &expect, &t, NOW + 600 + CLOCK_SKEW_SECS - 1).is_ok());
        assert!(matches!(
            validate(&keys, &expect, &t, NOW - 10 - CLOCK_SKEW_SECS - 1),
            Err(TokenError::NotYetValid { .. })
        ));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            validate(&keys, &expect, &s.sign(hdr(), c), NOW),
            Err(TokenError::NoExpiry)
        );
        let msg = validate(&keys, &expect, &t, NOW + 10_000)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("expired"), "{msg}");
    }

    #[test]
    fn issuer_audience_and_subject() {
        let (s, keys, expect) = setup();
        let mut c = claims();
        c["iss"] = "https://evil".into();
        assert!(matches!(
            validate(&keys, &expect, &s.sign(hdr(), c), NOW),
            Err(TokenError::Issuer { .. })
        ));
        let mut c = claims();
        c["aud"] = "other".into();
        assert!(matches!(
            validate(&keys, &expect, &s.sign(hdr(), c), NOW),
            Err(TokenError::Audience { .. })
        ));
        let mut c = claims();
        c["aud"] = "strata".into();
        assert!(validate(&keys, &expect, &s.sign(hdr(), c), NOW).is_ok());
        let mut c = claims();
        c.as_object_mut().unwrap().remove("sub");
        assert!(matches!(
            validate(&keys, &expect, &s.sign(hdr(), c), NOW),
            Err(TokenError::Subject(_))
        ));
        // Nothing expected: iss and aud are not checked.
        let open = Expectations {
            sub_claim: "sub".into(),
            ..Default::default()
        };
        let mut c = claims();
        c["iss"] = "anyone".into();
        c.as_object_mut().unwrap().remove("aud");
        assert!(validate(&keys, &open, &s.sign(hdr(), c), NOW).is_ok());
    }

    #[test]
    fn signatures_and_algorithms() {
        let (s, keys, expect) = setup();
        // Another key's signature.
        let other = Signer::new();
        assert_eq!(
            validate(&keys, &expect, &other.sign(hdr(), claims()), NOW),
            Err(TokenError::Signature)
        );
        // A tampered payload.
        let t = s.sign(hdr(), claims());
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        let mut c = claims();
        c["sub"] = "admin".into();
        parts[1] = enc(c.to_string().as_bytes());
        assert_eq!(
            validate(&keys, &expect, &parts.join("."), NOW),
            Err(TokenError::Signature)
        );
        // alg none, with or without a signature.
        let none = format!(
            "{}.{}.",
            enc(br#"{"alg":"none"}"#),
            enc(claims().to_string().as_bytes())
        );
        assert_eq!(
            validate(&keys, &expect, &none, NOW),
            Err(TokenError::Algorithm("none".into()))
        );
        // HMAC with the public key as secret (algorithm confusion).
        let hs = format!(
            "{}.{}.{}",
            enc(br#"{"alg":"HS256","kid":"k1"}"#),
            enc(claims().to_string().as_bytes()),
            enc(b"sig")
        );
        assert_eq!(
            validate(&keys, &expect, &hs, NOW),
            Err(TokenError::Algorithm("HS256".into()))
        );
        // An RSA algorithm with only an EC key: no key.
        let rs = s.sign(serde_json::json!({"alg": "RS256", "kid": "k1"}), claims());
        assert!(matches!(
            validate(&keys, &expect, &rs, NOW),
            Err(TokenError::UnknownKey { .. })
        ));
        let unknown = s.sign(serde_json::json!({"alg": "ES256", "kid": "k9"}), claims());
        assert!(matches!(
            validate(&keys, &expect, &unknown, NOW),
            Err(TokenError::UnknownKey { .. })
        ));
        for bad in ["", "a.b", "a.b.c.d", "!!!.x.y"] {
            assert!(matches!(
                validate(&keys, &expect, bad, NOW),
                Err(TokenError::Malformed(_))
            ));
        }
        assert_eq!(
            validate(&keys, &expect, &"a".repeat(MAX_TOKEN_BYTES + 1), NOW),
            Err(TokenError::TooLarge)
        );
    }

    #[test]
    fn jwks_documents() {
        assert!(KeySet::parse(b"not json").unwrap_err().contains("not JSON"));
        assert!(KeySet::parse(b"{}").unwrap_err().contains("keys"));
        let only_hmac = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
        assert!(KeySet::parse(only_hmac).unwrap_err().contains("no usable"));
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        assert!(KeySet::parse(&big).is_err());
    }

    #[test]
    fn client_first_messages() {
        assert_eq!(
            parse_client_first(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01"),
            Ok("abc.def.ghi")
        );
        assert_eq!(
            parse_client_first(b"n,a=alice,\x01host=h\x01auth=Bearer t.t.t\x01ext=1\x01\x01"),
            Ok("t.t.t")
        );
        for bad in [
            &b""[..],
            b"n,,auth=Bearer x\x01\x01",
            b"y,,\x01auth=Bearer x\x01\x01",
            b"n,,\x01auth=Basic x\x01\x01",
            b"n,,\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01auth=Bearer x\x01",
            b"\xff",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
    }
}

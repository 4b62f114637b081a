//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks
//! them: credentials (salt, iterations, StoredKey, ServerKey; never the
//! password) and the server side of the exchange.
//!
//! Pure: the server nonce is passed in, so the RFC test vector runs as is.
//! Every comparison of secret-derived bytes is constant-time.

use std::num::NonZeroU32;

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Kafka's iteration bounds (`AlterUserScramCredentials` refuses others).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;
/// Longest user name accepted.
pub const MAX_USER_LEN: usize = 256;

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(s: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
    }

    /// Kafka's `ScramMechanism` type byte (AlterUserScramCredentials).
    pub fn kafka_type(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.kafka_type() == t)
    }

    fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            Mechanism::Sha256 => hmac::HMAC_SHA256,
            Mechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_alg(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::Sha256 => &digest::SHA256,
            Mechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2_alg(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// Output length of the hash.
    pub fn output_len(self) -> usize {
        self.digest_alg().output_len()
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac_alg(), key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_alg(), data).as_ref().to_vec()
    }

    /// SaltedPassword = Hi(password, salt, i) (PBKDF2 with this HMAC).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        let n = NonZeroU32::new(iterations.max(1)).expect("max(1) is non-zero");
        pbkdf2::derive(self.pbkdf2_alg(), n, salt, password, &mut out);
        out
    }
}

/// What the broker keeps of a SCRAM password (Kafka's `ScramCredential`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

// Keys are derived from the password: never printed.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// From a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted(
        mech: Mechanism,
        salted: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Credential {
        let client_key = mech.hmac(salted, b"Client Key");
        Credential {
            salt,
            iterations,
            stored_key: mech.hash(&client_key),
            server_key: mech.hmac(salted, b"Server Key"),
        }
    }

    /// From a password (CPU-heavy: `iterations` HMACs; run it off the
    /// async workers).
    pub fn from_password(
        mech: Mechanism,
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Credential {
        let salted = mech.salted_password(password, &salt, iterations);
        Credential::from_salted(mech, &salted, salt, iterations)
    }

    /// Whether `password` is this credential's password (SASL/PLAIN
    /// checked against the SCRAM credential; constant-time comparison).
    pub fn verify_password(&self, mech: Mechanism, password: &[u8]) -> bool {
        let c = Credential::from_password(mech, password, self.salt.clone(), self.iterations);
        constant_time::verify_slices_are_equal(&c.stored_key, &self.stored_key).is_ok()
    }

    /// Shape check of a credential from the network or a file.
    pub fn valid_for(&self, mech: Mechanism) -> bool {
        (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&self.iterations)
            && !self.salt.is_empty()
            && self.salt.len() <= 1024
            && self.stored_key.len() == mech.output_len()
            && self.server_key.len() == mech.output_len()
    }
}

/// Why an exchange failed. Messages carry no secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("SCRAM channel binding is not supported")]
    ChannelBinding,
    #[error("authorization id differs from the user name")]
    AuthzId,
    #[error("the nonce does not continue the server's nonce")]
    Nonce,
    #[error("invalid credentials")]
    InvalidCredentials,
}

/// A parsed client-first-message.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFirst {
    pub user: String,
    pub nonce: String,
    /// client-first-message-bare (`n=...,r=...[,ext]`), part of AuthMessage.
    pub bare: String,
    /// The GS2 header (`n,,` / `n,a=user,`), echoed base64 in `c=`.
    pub gs2_header: String,
}

/// `=2C` → `,`, `=3D` → `=`; any other `=` is malformed (RFC 5802 §5.1).
fn decode_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest
            .get(i..i + 3)
            .ok_or(ScramError::Malformed("bad escape in name"))?;
        match esc {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn printable_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Parse a client-first-message.
pub fn parse_client_first(msg: &[u8]) -> Result<ClientFirst, ScramError> {
    let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let mut parts = msg.splitn(3, ',');
    let cb = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
    match cb {
        "n" | "y" => {}
        c if c.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("bad channel binding flag")),
    }
    let authz = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
    let bare = parts
        .next()
        .ok_or(ScramError::Malformed("no client-first-message-bare"))?;
    let gs2_header = format!("{cb},{authz},");
    let authz = match authz {
        "" => None,
        a => Some(decode_saslname(
            a.strip_prefix("a=")
                .ok_or(ScramError::Malformed("bad authzid"))?,
        )?),
    };
    let mut fields = bare.split(',');
    let user = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .ok_or(ScramError::Malformed("no n="))?;
    let user = decode_saslname(user)?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no r="))?;
    if user.is_empty() || user.len() > MAX_USER_LEN {
        return Err(ScramError::Malformed("bad user name length"));
    }
    if !printable_nonce(nonce) {
        return Err(ScramError::Malformed("bad nonce"));
    }
    if authz.as_ref().is_some_and(|a| *a != user) {
        return Err(ScramError::AuthzId);
    }
    Ok(ClientFirst {
        user,
        nonce: nonce.to_string(),
        bare: bare.to_string(),
        gs2_header,
    })
}

/// The server's side of one exchange, between its first and final message.
pub struct ServerExchange {
    mech: Mechanism,
    first: ClientFirst,
    server_first: String,
    nonce: String,
    credential: Credential,
    /// The user is unknown: the exchange goes on with a made-up salt (the
    /// reply does not tell a name exists) and fails at the proof.
    known: bool,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl ServerExchange {
    /// Answer a client-first-message. `credential` is the user's (or
    /// `None`: unknown user); `server_nonce` comes from a CSPRNG.
    pub fn start(
        mech: Mechanism,
        first: ClientFirst,
        credential: Option<Credential>,
        server_nonce: &str,
        fake_salt: Vec<u8>,
    ) -> (ServerExchange, String) {
        let known = credential.is_some();
        let credential = credential.unwrap_or_else(|| Credential {
            salt: fake_salt,
            iterations: MIN_ITERATIONS,
            stored_key: vec![0; mech.output_len()],
            server_key: vec![0; mech.output_len()],
        });
        let nonce = format!("{}{}", first.nonce, server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone();
        (
            ServerExchange {
                mech,
                first,
                server_first,
                nonce,
                credential,
                known,
            },
            reply,
        )
    }

    /// The mechanism of the exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// The authenticated user name (once `finish` succeeded).
    pub fn user(&self) -> &str {
        &self.first.user
    }

    /// Check a client-final-message; on success the server-final-message.
    pub fn finish(&self, msg: &[u8]) -> Result<String, ScramError> {
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let c = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no c="))?;
        let r = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no r="))?;
        let cb = B64
            .decode(c)
            .map_err(|_| ScramError::Malformed("c= is not base64"))?;
        if cb != self.first.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBinding);
        }
        // The nonce must end with the whole nonce of server-first (client
        // nonce + server nonce), as Kafka checks it: librdkafka before 2.1
        // sends its client nonce once more in front.
        let tail = r
            .len()
            .checked_sub(self.nonce.len())
            .and_then(|at| r.get(at..))
            .ok_or(ScramError::Nonce)?;
        if constant_time::verify_slices_are_equal(tail.as_bytes(), self.nonce.as_bytes()).is_err() {
            return Err(ScramError::Nonce);
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("p= is not base64"))?;
        if proof.len() != self.mech.output_len() {
            return Err(ScramError::InvalidCredentials);
        }
        let auth_message = format!(
            "{},{},{}",
            self.first.bare, self.server_first, without_proof
        );
        let client_signature = self
            .mech
            .hmac(&self.credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let stored = self.mech.hash(&client_key);
        let ok =
            constant_time::verify_slices_are_equal(&stored, &self.credential.stored_key).is_ok();
        if !ok || !self.known {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = self
            .mech
            .hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// Random bytes from the system CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use aws_lc_rs::rand::SecureRandom;
    let mut out = vec![0u8; n];
    // The system generator does not fail on supported platforms; a zeroed
    // buffer would only weaken a salt, never break the exchange.
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut out);
    out
}

/// A fresh server nonce (printable, no comma).
pub fn server_nonce() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3 (SCRAM-SHA-256, user "user", password "pencil").
    #[test]
    fn rfc7677_test_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = Credential::from_password(Mechanism::Sha256, b"pencil", salt, 4096);
        let first = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.user, "user");
        let (ex, server_first) = ServerExchange::start(
            Mechanism::Sha256,
            first,
            Some(cred.clone()),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            vec![],
        );
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let fin = ex
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(fin, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        // A proof for another nonce, a wrong proof, a missing server nonce.
        assert_eq!(
            ex.finish(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
            ),
            Err(ScramError::Nonce)
        );
        // The right proof for another final message (extra nonce prefix).
        assert_eq!(
            ex.finish(b"c=biws,r=XrOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
            Err(ScramError::InvalidCredentials)
        );
        assert_eq!(
            ex.finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
            Err(ScramError::Nonce)
        );
        assert_eq!(
            ex.finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
            Err(ScramError::InvalidCredentials)
        );
        assert_eq!(
            ex.finish(b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
            Err(ScramError::ChannelBinding)
        );
        assert!(cred.verify_password(Mechanism::Sha256, b"pencil"));
        assert!(!cred.verify_password(Mechanism::Sha256, b"pencil2"));
    }

    #[test]
    fn unknown_user_fails_at_the_proof_only() {
        let first = parse_client_first(b"n,,n=nobody,r=abc").unwrap();
        let (ex, reply) =
            ServerExchange::start(Mechanism::Sha512, first, None, "xyz", vec![1, 2, 3]);
        assert!(reply.starts_with("r=abcxyz,s=AQID,i=4096"));
        let proof = B64.encode(vec![0u8; 64]);
        let msg = format!("c=biws,r=abcxyz,p={proof}");
        assert_eq!(
            ex.finish(msg.as_bytes()),
            Err(ScramError::InvalidCredentials)
        );
    }

    #[test]
    fn client_first_parsing() {
        let f = parse_client_first(b"n,a=a=3Db,n=a=3Db,r=N0nce,ext=1").unwrap();
        assert_eq!(f.user, "a=b");
        assert_eq!(f.gs2_header, "n,a=a=3Db,");
        assert_eq!(f.bare, "n=a=3Db,r=N0nce,ext=1");
        for bad in [
            &b""[..],
            b"n",
            b"n,,",
            b"x,,n=u,r=1",
            b"n,,n=u",
            b"n,,r=1,n=u",
            b"n,,n=,r=1",
            b"n,,n=u=ZZ,r=1",
            b"n,,n=u,r=",
            b"n,a=v,n=u,r=1",
            b"p=tls-unique,,n=u,r=1",
            b"\xff,,n=u,r=1",
        ] {
            assert!(
                parse_client_first(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the parsers.
        #[test]
        fn parsers_never_panic(a in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_client_first(&a);
            let first = parse_client_first(b"n,,n=u,r=1").unwrap();
            let (ex, _) = ServerExchange::start(Mechanism::Sha256, first, None, "2", vec![1]);
            let _ = ex.finish(&a);
        }
    }
}

//! The security flags of `strata serve` and their validation (the fields
//! themselves sit in [`crate::config::Config`], so the TOML keys are the
//! flag names like every other key).

use std::path::PathBuf;

use super::listeners::{resolve, Listener};
use super::SaslMech;
use crate::config::Config;

/// Security flags (flattened into `strata serve`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecurityArgs {
    /// Kafka listeners NAME://HOST:PORT,... e.g. PLAINTEXT://:9092,SASL_SSL://:9094 (replaces --kafka-listen).
    #[arg(long, env = "STRATA_LISTENERS", value_name = "LISTENERS")]
    pub listeners: Option<String>,
    /// Addresses clients are told per listener, NAME://HOST:PORT,... [default: --advertised-host and the listener's port].
    #[arg(long, env = "STRATA_ADVERTISED_LISTENERS", value_name = "LISTENERS")]
    pub advertised_listeners: Option<String>,
    /// Security protocol of listener names that are not protocol names, NAME:PROTOCOL,...
    #[arg(
        long,
        env = "STRATA_LISTENER_SECURITY_PROTOCOL_MAP",
        value_name = "MAP"
    )]
    pub listener_security_protocol_map: Option<String>,
    /// PEM certificate chain of the TLS listeners (reloaded when the file changes).
    #[arg(long, env = "STRATA_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "STRATA_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle; TLS clients must present a certificate signed by it (mutual TLS).
    #[arg(long, env = "STRATA_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// SASL mechanisms offered [default: PLAIN,SCRAM-SHA-256,SCRAM-SHA-512].
    #[arg(long, env = "STRATA_SASL_ENABLED_MECHANISMS", value_name = "LIST")]
    pub sasl_enabled_mechanisms: Option<String>,
    /// Lifetime of a SASL session; clients re-authenticate before it ends (0 = unlimited) [default: 0].
    #[arg(long, env = "STRATA_SASL_SESSION_LIFETIME_MS", value_name = "MS")]
    pub sasl_session_lifetime_ms: Option<u64>,
    /// `acl` enforces ACLs (CreateAcls/DescribeAcls/DeleteAcls) on every request; `none` allows everything [default: none].
    #[arg(long, env = "STRATA_AUTHORIZER", value_name = "acl|none")]
    pub authorizer: Option<String>,
    /// Principals allowed everything, e.g. User:admin;User:ops.
    #[arg(long, env = "STRATA_SUPER_USERS", value_name = "PRINCIPALS")]
    pub super_users: Option<String>,
    /// With --authorizer acl, a resource with no ACL at all is open to everyone [default: false].
    #[arg(long, env = "STRATA_ALLOW_EVERYONE_IF_NO_ACL_FOUND", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub allow_everyone_if_no_acl_found: Option<bool>,
    /// JWKS of OAUTHBEARER and HTTP bearer tokens: a file or an http(s) URL (sasl.oauthbearer.jwks.endpoint.url).
    #[arg(long, env = "STRATA_SASL_OAUTHBEARER_JWKS", value_name = "FILE|URL")]
    pub sasl_oauthbearer_jwks: Option<String>,
    /// How often the JWKS is read again [default: 3600000].
    #[arg(
        long,
        env = "STRATA_SASL_OAUTHBEARER_JWKS_REFRESH_MS",
        value_name = "MS"
    )]
    pub sasl_oauthbearer_jwks_refresh_ms: Option<u64>,
    /// The iss claim tokens must carry [default: not checked].
    #[arg(
        long,
        env = "STRATA_SASL_OAUTHBEARER_EXPECTED_ISSUER",
        value_name = "ISSUER"
    )]
    pub sasl_oauthbearer_expected_issuer: Option<String>,
    /// Audiences, comma-separated; a token's aud must name one [default: not checked].
    #[arg(
        long,
        env = "STRATA_SASL_OAUTHBEARER_EXPECTED_AUDIENCE",
        value_name = "LIST"
    )]
    pub sasl_oauthbearer_expected_audience: Option<String>,
    /// The claim naming the principal User:<claim> [default: sub].
    #[arg(
        long,
        env = "STRATA_SASL_OAUTHBEARER_SUB_CLAIM_NAME",
        value_name = "CLAIM"
    )]
    pub sasl_oauthbearer_sub_claim_name: Option<String>,
    /// Authentication of the HTTP API: none, basic, bearer or basic,bearer [default: none].
    #[arg(long, env = "STRATA_HTTP_AUTH", value_name = "METHODS")]
    pub http_auth: Option<String>,
    /// /metrics needs the HTTP authentication too [default: false].
    #[arg(long, env = "STRATA_METRICS_AUTH", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub metrics_auth: Option<bool>,
    /// PEM certificate chain of the HTTP listener (serves HTTPS; reloaded when the file changes).
    #[arg(long, env = "STRATA_HTTP_TLS_CERT", value_name = "FILE")]
    pub http_tls_cert: Option<PathBuf>,
    /// PEM private key of --http-tls-cert.
    #[arg(long, env = "STRATA_HTTP_TLS_KEY", value_name = "FILE")]
    pub http_tls_key: Option<PathBuf>,
    /// PEM CA bundle; HTTPS clients must present a certificate signed by it, its CN is the principal.
    #[arg(long, env = "STRATA_HTTP_TLS_CLIENT_CA", value_name = "FILE")]
    pub http_tls_client_ca: Option<PathBuf>,
}

impl SecurityArgs {
    /// Flags over the file.
    pub fn apply(&self, c: &mut Config) {
        for (dst, src) in [
            (&mut c.listeners, &self.listeners),
            (&mut c.advertised_listeners, &self.advertised_listeners),
            (
                &mut c.listener_security_protocol_map,
                &self.listener_security_protocol_map,
            ),
        ] {
            if src.is_some() {
                *dst = src.clone();
            }
        }
        for (dst, src) in [
            (&mut c.tls_cert, &self.tls_cert),
            (&mut c.tls_key, &self.tls_key),
            (&mut c.tls_client_ca, &self.tls_client_ca),
        ] {
            if src.is_some() {
                *dst = src.clone();
            }
        }
        if let Some(m) = &self.sasl_enabled_mechanisms {
            c.sasl_enabled_mechanisms = m.clone();
        }
        if let Some(ms) = self.sasl_session_lifetime_ms {
            c.sasl_session_lifetime_ms = ms;
        }
        if let Some(a) = &self.authorizer {
            c.authorizer = a.clone();
        }
        if self.super_users.is_some() {
            c.super_users = self.super_users.clone();
        }
        if let Some(a) = self.allow_everyone_if_no_acl_found {
            c.allow_everyone_if_no_acl_found = a;
        }
        for (dst, src) in [
            (&mut c.sasl_oauthbearer_jwks, &self.sasl_oauthbearer_jwks),
            (
                &mut c.sasl_oauthbearer_expected_issuer,
                &self.sasl_oauthbearer_expected_issuer,
            ),
            (
                &mut c.sasl_oauthbearer_expected_audience,
                &self.sasl_oauthbearer_expected_audience,
            ),
        ] {
            if src.is_some() {
                *dst = src.clone();
            }
        }
        if let Some(ms) = self.sasl_oauthbearer_jwks_refresh_ms {
            c.sasl_oauthbearer_jwks_refresh_ms = ms;
        }
        if let Some(s) = &self.sasl_oauthbearer_sub_claim_name {
            c.sasl_oauthbearer_sub_claim_name = s.clone();
        }
        if let Some(a) = &self.http_auth {
            c.http_auth = a.clone();
        }
        if let Some(m) = self.metrics_auth {
            c.metrics_auth = m;
        }
        for (dst, src) in [
            (&mut c.http_tls_cert, &self.http_tls_cert),
            (&mut c.http_tls_key, &self.http_tls_key),
            (&mut c.http_tls_client_ca, &self.http_tls_client_ca),
        ] {
            if src.is_some() {
                *dst = src.clone();
            }
        }
    }
}

/// What OAUTHBEARER and HTTP bearer tokens must carry.
pub fn oauth_expectations(c: &Config) -> super::oauth::Expectations {
    super::oauth::Expectations {
        issuer: c
            .sasl_oauthbearer_expected_issuer
            .clone()
            .filter(|s| !s.is_empty()),
        audiences: c
            .sasl_oauthbearer_expected_audience
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
        sub_claim: c.sasl_oauthbearer_sub_claim_name.clone(),
    }
}

/// The HTTP API's authentication methods.
pub fn http_auth(c: &Config) -> Result<super::http::Methods, (&'static str, String)> {
    let mut m = super::http::Methods::default();
    for part in c
        .http_auth
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
    {
        match part.as_str() {
            "none" => {}
            "basic" => m.basic = true,
            "bearer" => m.bearer = true,
            other => {
                return Err((
                    "--http-auth",
                    format!("expected none, basic, bearer or basic,bearer, got {other:?}"),
                ))
            }
        }
    }
    Ok(m)
}

/// The listeners of a config.
pub fn listeners(c: &Config) -> Result<Vec<Listener>, (&'static str, String)> {
    resolve(
        c.listeners.as_deref(),
        c.advertised_listeners.as_deref(),
        c.listener_security_protocol_map.as_deref(),
        c.kafka_listen,
        &c.advertised_host,
        c.advertised_port,
    )
    .map_err(|e| (e.flag, e.message))
}

/// The SASL mechanisms of a config.
pub fn mechanisms(c: &Config) -> Result<Vec<SaslMech>, (&'static str, String)> {
    let mut out = Vec::new();
    for m in c
        .sasl_enabled_mechanisms
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        let mech = SaslMech::parse(m).ok_or_else(|| {
            (
                "--sasl-enabled-mechanisms",
                format!(
                    "unknown mechanism {m:?} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)"
                ),
            )
        })?;
        if !out.contains(&mech) {
            out.push(mech);
        }
    }
    Ok(out)
}

/// The authorizer settings of a config.
pub fn authorizer(c: &Config) -> Result<super::acl::AuthorizerConfig, (&'static str, String)> {
    let enabled = match c.authorizer.to_ascii_lowercase().as_str() {
        "acl" => true,
        "none" | "" => false,
        other => {
            return Err((
                "--authorizer",
                format!("expected acl or none, got {other:?}"),
            ))
        }
    };
    let mut super_users = Vec::new();
    for p in c
        .super_users
        .as_deref()
        .unwrap_or("")
        .split([';', ','])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if !p
            .split_once(':')
            .is_some_and(|(k, n)| !k.is_empty() && !n.is_empty())
        {
            return Err((
                "--super-users",
                format!("expected TYPE:NAME principals, got {p:?}"),
            ));
        }
        super_users.push(p.to_string());
    }
    Ok(super::acl::AuthorizerConfig {
        enabled,
        super_users,
        allow_if_no_acl: c.allow_everyone_if_no_acl_found,
    })
}

/// Checks the security flags (file contents are checked when they are
/// loaded at start, naming the file).
pub fn validate(c: &Config) -> Result<(), (&'static str, String)> {
    let ls = listeners(c)?;
    authorizer(c)?;
    let mechs = mechanisms(c)?;
    if ls.iter().any(|l| l.protocol.sasl()) && mechs.is_empty() {
        return Err((
            "--sasl-enabled-mechanisms",
            "a SASL listener needs at least one mechanism".into(),
        ));
    }
    if ls.iter().any(|l| l.protocol.tls()) && (c.tls_cert.is_none() || c.tls_key.is_none()) {
        return Err((
            "--tls-cert",
            "TLS listeners (SSL, SASL_SSL) need --tls-cert and --tls-key".into(),
        ));
    }
    if c.tls_cert.is_some() != c.tls_key.is_some() {
        return Err(("--tls-key", "--tls-cert and --tls-key go together".into()));
    }
    if c.tls_client_ca.is_some() && c.tls_cert.is_none() {
        return Err(("--tls-client-ca", "needs --tls-cert and --tls-key".into()));
    }
    let jwks = c
        .sasl_oauthbearer_jwks
        .as_deref()
        .is_some_and(|j| !j.is_empty());
    if mechs.contains(&SaslMech::OAuthBearer) && !jwks {
        return Err((
            "--sasl-oauthbearer-jwks",
            "OAUTHBEARER in --sasl-enabled-mechanisms needs a JWKS file or URL".into(),
        ));
    }
    if c.sasl_oauthbearer_sub_claim_name.is_empty() {
        return Err((
            "--sasl-oauthbearer-sub-claim-name",
            "must not be empty".into(),
        ));
    }
    if jwks && c.sasl_oauthbearer_jwks_refresh_ms != 0 && c.sasl_oauthbearer_jwks_refresh_ms < 1000
    {
        return Err((
            "--sasl-oauthbearer-jwks-refresh-ms",
            format!(
                "must be 0 (never) or >= 1000, got {}",
                c.sasl_oauthbearer_jwks_refresh_ms
            ),
        ));
    }
    let http = http_auth(c)?;
    if http.bearer && !jwks {
        return Err((
            "--sasl-oauthbearer-jwks",
            "--http-auth bearer needs a JWKS file or URL".into(),
        ));
    }
    if c.metrics_auth && !http.any() && c.http_tls_client_ca.is_none() {
        return Err((
            "--metrics-auth",
            "needs --http-auth basic/bearer or --http-tls-client-ca".into(),
        ));
    }
    if c.http_tls_cert.is_some() != c.http_tls_key.is_some() {
        return Err((
            "--http-tls-key",
            "--http-tls-cert and --http-tls-key go together".into(),
        ));
    }
    if c.http_tls_client_ca.is_some() && c.http_tls_cert.is_none() {
        return Err((
            "--http-tls-client-ca",
            "needs --http-tls-cert and --http-tls-key".into(),
        ));
    }
    Ok(())
}

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
    }
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
                format!("unknown mechanism {m:?} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"),
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
    Ok(())
}

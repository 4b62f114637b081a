//! Kafka listeners in Kafka's own syntax: `--listeners
//! PLAINTEXT://:9092,SASL_SSL://:9094` (bind addresses), `--advertised-listeners`
//! (what clients are told), `--listener-security-protocol-map` for listener
//! names that are not protocol names (`INTERNAL:SSL`).
//!
//! Parsing is pure: [`resolve`] turns the flags into a list of
//! [`Listener`]s or an error naming the flag.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

/// The security protocol of a listener: what a connection on it is wrapped
/// in (TLS or not) and whether it must authenticate with SASL first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SecurityProtocol {
    /// Neither encryption nor authentication.
    Plaintext,
    /// TLS; a client certificate authenticates when `--tls-client-ca` is set.
    Ssl,
    /// SASL authentication without encryption (passwords of PLAIN travel in clear).
    SaslPlaintext,
    /// SASL authentication inside TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Parse Kafka's name (case-insensitive).
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    /// Connections are wrapped in TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Connections must authenticate with SASL before anything but
    /// ApiVersions and the SASL frames.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One resolved listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Listener name (`PLAINTEXT`, `SASL_SSL`, `INTERNAL`, ...).
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Where it binds.
    pub bind: SocketAddr,
    /// Host clients are told to connect to.
    pub advertised_host: String,
    /// Port clients are told to connect to.
    pub advertised_port: u16,
}

/// A listener flag that does not parse; names the flag and the entry.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {flag}: {message}")]
pub struct ListenerError {
    pub flag: &'static str,
    pub message: String,
}

fn err(flag: &'static str, message: String) -> ListenerError {
    ListenerError { flag, message }
}

/// `NAME://host:port` → (NAME upper-cased, host, port).
fn parse_entry(flag: &'static str, entry: &str) -> Result<(String, String, u16), ListenerError> {
    let Some((name, rest)) = entry.split_once("://") else {
        return Err(err(
            flag,
            format!("expected NAME://HOST:PORT, got {entry:?}"),
        ));
    };
    let name = name.trim().to_ascii_uppercase();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(err(flag, format!("invalid listener name in {entry:?}")));
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(err(flag, format!("missing :PORT in {entry:?}")));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| err(flag, format!("invalid port in {entry:?}")))?;
    // [::1]:9092
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((name, host.to_string(), port))
}

/// `INTERNAL:SSL,EXTERNAL:SASL_SSL` → name → protocol.
pub fn parse_protocol_map(
    map: Option<&str>,
) -> Result<BTreeMap<String, SecurityProtocol>, ListenerError> {
    const FLAG: &str = "--listener-security-protocol-map";
    let mut out = BTreeMap::new();
    for entry in map.unwrap_or("").split(',').map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        let Some((name, proto)) = entry.split_once(':') else {
            return Err(err(FLAG, format!("expected NAME:PROTOCOL, got {entry:?}")));
        };
        let p = SecurityProtocol::parse(proto.trim()).ok_or_else(|| {
            err(
                FLAG,
                format!("unknown security protocol {proto:?} (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"),
            )
        })?;
        out.insert(name.trim().to_ascii_uppercase(), p);
    }
    Ok(out)
}

/// The listeners of a broker.
///
/// - `listeners`: `--listeners`; `None` means one PLAINTEXT listener on
///   `default_bind` (the `--kafka-listen` address) advertised at
///   `default_host:default_port`.
/// - `advertised`: `--advertised-listeners`; a listener not named there is
///   advertised at `default_host` and its own port (the first one at
///   `default_port` if `--advertised-port` was given).
pub fn resolve(
    listeners: Option<&str>,
    advertised: Option<&str>,
    protocol_map: Option<&str>,
    default_bind: SocketAddr,
    default_host: &str,
    default_port: Option<u16>,
) -> Result<Vec<Listener>, ListenerError> {
    let map = parse_protocol_map(protocol_map)?;
    let Some(spec) = listeners.filter(|s| !s.trim().is_empty()) else {
        if advertised.is_some_and(|a| !a.trim().is_empty()) {
            return Err(err(
                "--advertised-listeners",
                "needs --listeners".to_string(),
            ));
        }
        return Ok(vec![Listener {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            bind: default_bind,
            advertised_host: default_host.to_string(),
            advertised_port: default_port.unwrap_or(default_bind.port()),
        }]);
    };
    const FLAG: &str = "--listeners";
    let mut out: Vec<Listener> = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, host, port) = parse_entry(FLAG, entry)?;
        let protocol = match map.get(&name) {
            Some(p) => *p,
            None => SecurityProtocol::parse(&name).ok_or_else(|| {
                err(
                    FLAG,
                    format!(
                        "listener {name} is not a security protocol name; map it with \
                         --listener-security-protocol-map {name}:PROTOCOL"
                    ),
                )
            })?,
        };
        if out.iter().any(|l| l.name == name) {
            return Err(err(FLAG, format!("listener {name} given twice")));
        }
        let bind_host = if host.is_empty() { "0.0.0.0" } else { &host };
        let bind = (bind_host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| err(FLAG, format!("cannot resolve {bind_host:?} in {entry:?}")))?;
        if out.iter().any(|l| l.bind == bind) {
            return Err(err(FLAG, format!("two listeners bind {bind}")));
        }
        let advertised_port = if out.is_empty() {
            default_port.unwrap_or(port)
        } else {
            port
        };
        out.push(Listener {
            name,
            protocol,
            bind,
            advertised_host: default_host.to_string(),
            advertised_port,
        });
    }
    if out.is_empty() {
        return Err(err(FLAG, "no listener given".into()));
    }
    const AFLAG: &str = "--advertised-listeners";
    for entry in advertised
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, host, port) = parse_entry(AFLAG, entry)?;
        let Some(l) = out.iter_mut().find(|l| l.name == name) else {
            return Err(err(AFLAG, format!("{name} is not one of --listeners")));
        };
        if !host.is_empty() {
            l.advertised_host = host;
        }
        l.advertised_port = port;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind() -> SocketAddr {
        "0.0.0.0:9092".parse().unwrap()
    }

    #[test]
    fn default_is_one_plaintext_listener() {
        let l = resolve(None, None, None, bind(), "localhost", None).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].name, "PLAINTEXT");
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[0].bind, bind());
        assert_eq!(
            (l[0].advertised_host.as_str(), l[0].advertised_port),
            ("localhost", 9092)
        );
    }

    #[test]
    fn kafka_syntax_with_advertised_and_map() {
        let l = resolve(
            Some("PLAINTEXT://127.0.0.1:9092, SASL_SSL://:9094,internal://127.0.0.1:9095"),
            Some("SASL_SSL://broker.example.com:19094,INTERNAL://:29095"),
            Some("INTERNAL:SSL"),
            bind(),
            "localhost",
            None,
        )
        .unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[0].bind, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(l[1].name, "SASL_SSL");
        assert_eq!(l[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l[1].bind, "0.0.0.0:9094".parse().unwrap());
        assert_eq!(l[1].advertised_host, "broker.example.com");
        assert_eq!(l[1].advertised_port, 19094);
        assert_eq!(l[2].protocol, SecurityProtocol::Ssl);
        assert_eq!(l[2].advertised_host, "localhost");
        assert_eq!(l[2].advertised_port, 29095);
    }

    #[test]
    fn bad_entries_name_the_flag() {
        for (listeners, adv, map, flag) in [
            (Some("PLAINTEXT:9092"), None, None, "--listeners"),
            (Some("FOO://:9092"), None, None, "--listeners"),
            (Some("PLAINTEXT://:99999"), None, None, "--listeners"),
            (
                Some("PLAINTEXT://:9092,PLAINTEXT://:9093"),
                None,
                None,
                "--listeners",
            ),
            (
                Some("PLAINTEXT://:9092,SSL://:9092"),
                None,
                None,
                "--listeners",
            ),
            (
                Some("PLAINTEXT://:9092"),
                Some("SSL://:1"),
                None,
                "--advertised-listeners",
            ),
            (None, Some("SSL://:1"), None, "--advertised-listeners"),
            (
                Some("A://:1"),
                None,
                Some("A:TLS"),
                "--listener-security-protocol-map",
            ),
        ] {
            let e = resolve(listeners, adv, map, bind(), "h", None).unwrap_err();
            assert_eq!(e.flag, flag, "{listeners:?} {adv:?} {map:?}: {e}");
        }
    }
}

//! TLS for the Kafka listeners (rustls): the server certificate chain and
//! key, an optional client CA (mutual TLS: a client without a certificate
//! signed by it is refused in the handshake), and reloading when the files
//! change so certificates rotate without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::sync::watch;

/// A TLS file that cannot be used; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {flag} {path}: {message}")]
    File {
        flag: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{flag} {path}: {message}")]
    Invalid {
        flag: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("TLS listeners need --tls-cert and --tls-key")]
    Missing,
    #[error("{flags} go together")]
    Incomplete { flags: &'static str },
}

/// The flags the files were given with (errors name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsFlags {
    pub cert: &'static str,
    pub key: &'static str,
    pub client_ca: &'static str,
}

/// The Kafka listeners' TLS flags.
pub const LISTENER_FLAGS: TlsFlags = TlsFlags {
    cert: "--tls-cert",
    key: "--tls-key",
    client_ca: "--tls-client-ca",
};

/// The HTTP listener's TLS flags (HTTPS: a client certificate is optional
/// in the handshake and names the principal; ALPN `http/1.1`).
pub const HTTP_FLAGS: TlsFlags = TlsFlags {
    cert: "--http-tls-cert",
    key: "--http-tls-key",
    client_ca: "--http-tls-client-ca",
};

/// Where the certificate, key and client CA come from.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub flags: TlsFlags,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [
            Some(self.cert.as_path()),
            Some(self.key.as_path()),
            self.client_ca.as_deref(),
        ]
        .into_iter()
        .flatten()
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        flag,
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(flag, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid {
            flag,
            path: path.to_path_buf(),
            message: format!("not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            flag,
            path: path.to_path_buf(),
            message: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(certs)
}

/// Build the rustls server config from the files (blocking file reads:
/// call at start or from a blocking thread).
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let flags = files.flags;
    let (chain, key) = identity(files)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid {
            flag: flags.cert,
            path: files.cert.clone(),
            message: e.to_string(),
        })?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let roots = roots(flags.client_ca, ca)?;
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if flags == HTTP_FLAGS {
                // HTTPS: a certificate, when presented, must be valid; without
                // one the request needs another authentication (and the
                // health probes stay reachable).
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| TlsError::Invalid {
                flag: flags.client_ca,
                path: ca.clone(),
                message: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| mismatch(files, e))?;
    if flags == HTTP_FLAGS {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}

/// The certificate chain and private key of `files`.
pub fn identity(
    files: &TlsFiles,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = certs(files.flags.cert, &files.cert)?;
    let key_pem = read(files.flags.key, &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Invalid {
        flag: files.flags.key,
        path: files.key.clone(),
        // The message of the PEM parser never carries key bytes.
        message: format!("no usable private key: {e}"),
    })?;
    Ok((chain, key))
}

/// The key does not go with the certificate.
pub fn mismatch(files: &TlsFiles, e: rustls::Error) -> TlsError {
    TlsError::Invalid {
        flag: files.flags.key,
        path: files.key.clone(),
        message: format!(
            "does not match {} {}: {e}",
            files.flags.cert,
            files.cert.display()
        ),
    }
}

/// A store of the CA certificates in `path`.
pub fn roots(flag: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(flag, path)? {
        roots.add(c).map_err(|e| TlsError::Invalid {
            flag,
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The current server config, swapped when the files change. Readers take
/// a clone of the `Arc` per accepted connection.
pub struct TlsReloader {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

/// How often the files' modification times are checked.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

impl TlsReloader {
    /// Load once; an error stops startup.
    pub fn new(files: TlsFiles) -> Result<Arc<TlsReloader>, TlsError> {
        let config = load(&files)?;
        Ok(Arc::new(TlsReloader {
            files,
            current: RwLock::new(config),
        }))
    }

    /// The config new connections use.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().clone())
    }

    fn stamps(files: &TlsFiles) -> Vec<Option<(SystemTime, u64)>> {
        files
            .paths()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
            })
            .collect()
    }

    /// Watch the files until shutdown: when their modification times or
    /// sizes change, load them again; a bad set (a half-written file) keeps
    /// the previous config and is retried at the next change or check.
    pub async fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut seen = {
            let files = self.files.clone();
            tokio::task::spawn_blocking(move || Self::stamps(&files))
                .await
                .unwrap_or_default()
        };
        let mut failed = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RELOAD_CHECK) => {}
                _ = shutdown.changed() => return,
            }
            let files = self.files.clone();
            let Ok((stamps, loaded)) = tokio::task::spawn_blocking(move || {
                let before = Self::stamps(&files);
                (before, files)
            })
            .await
            else {
                continue;
            };
            if stamps == seen && !failed {
                continue;
            }
            let result = tokio::task::spawn_blocking(move || load(&loaded)).await;
            match result {
                Ok(Ok(config)) => {
                    *self.current.write() = config;
                    seen = stamps;
                    failed = false;
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                }
                Ok(Err(e)) => {
                    if !failed || stamps != seen {
                        tracing::warn!(error = %e, "TLS files changed but cannot be loaded; keeping the previous certificate");
                    }
                    seen = stamps;
                    failed = true;
                }
                Err(_) => {}
            }
        }
    }
}

/// One DER TLV: (tag, contents, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&len0, mut b) = b.split_first()?;
    let len = if len0 < 0x80 {
        usize::from(len0)
    } else {
        let n = usize::from(len0 & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let mut l = 0usize;
        for &x in &b[..n] {
            l = (l << 8) | usize::from(x);
        }
        b = &b[n..];
        l
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

/// The principal of a verified client certificate chain: `User:<subject
/// CN>` of the leaf, when it has a CN that is a valid user name. Kafka
/// listeners and the HTTPS port map certificates the same way (Kafka's SSL
/// principal with the common `RULE:^CN=(.*?),.*$/$1/` mapping).
pub fn certificate_principal(chain: Option<&[CertificateDer<'_>]>) -> Option<String> {
    chain
        .and_then(|c| c.first())
        .and_then(|c| subject_cn(c))
        .filter(|cn| crate::auth::state::valid_user(cn))
        .map(|cn| format!("User:{cn}"))
}

/// The subject common name of a DER certificate (the principal of a
/// client certificate, `User:<CN>`), if it has one.
pub fn subject_cn(der: &[u8]) -> Option<String> {
    const SEQ: u8 = 0x30;
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let (t, cert, _) = tlv(der)?;
    (t == SEQ).then_some(())?;
    let (t, tbs, _) = tlv(cert)?;
    (t == SEQ).then_some(())?;
    // [0] version is optional; then serial, signature, issuer, validity, subject.
    let (t, _, after_version) = tlv(tbs)?;
    let mut rest = if t == 0xa0 { after_version } else { tbs };
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (t, mut name, _) = tlv(rest)?;
    (t == SEQ).then_some(())?;
    while !name.is_empty() {
        let (_, set, r) = tlv(name)?;
        name = r;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (_, atv, r) = tlv(atvs)?;
            atvs = r;
            let (t, oid, v) = tlv(atv)?;
            if t == 0x06 && oid == CN {
                let (_, value, _) = tlv(v)?;
                return String::from_utf8(value.to_vec()).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn der(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    #[test]
    fn subject_common_names() {
        // v3, self-signed: O=Strata Test, CN=alice-cn.
        let v3 = der("MIIBpzCCAU2gAwIBAgIUXrfYrklAUz9U+cb4babLVUsZ8Q0wCgYIKoZIzj0EAwIwKTEUMBIGA1UECgwLU3RyYXRhIFRlc3QxETAPBgNVBAMMCGFsaWNlLWNuMB4XDTI2MTEzMDE5MjQxNloXDTI2MTIwMTE5MjQxNlowKTEUMBIGA1UECgwLU3RyYXRhIFRlc3QxETAPBgNVBAMMCGFsaWNlLWNuMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZt04mNKLzhomJg2WuokfOBfJflt6taQjrIpbpF7NKaYSVlj9KVlJallTK0cIsAstNkeYcfT2++OIgrYDKt0Si6NTMFEwHQYDVR0OBBYEFJdOarFsyCopMWKtWMmxm0a1A3KWMB8GA1UdIwQYMBaAFJdOarFsyCopMWKtWMmxm0a1A3KWMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhALHjQbzyoJ6byIylppZwFT3AF94ogZPCQxPjUF9JnnCzAiB8XWECEQeMGFEzNVVpNXT2Ijqry8WxGUY+SoBYSXBbJA==");
        assert_eq!(subject_cn(&v3).as_deref(), Some("alice-cn"));
        // v1 (no version field), issuer CN=test-ca: the subject's CN is taken.
        let v1 = der("MIIBNTCB3AIUHARw9iji85kWkM94S7M4QkL6jcowCgYIKoZIzj0EAwIwEjEQMA4GA1UEAwwHdGVzdC1jYTAeFw0yNjExMzAxOTI0MThaFw0yNjEyMDExOTI0MThaMCkxFDASBgNVBAoMC1N0cmF0YSBUZXN0MREwDwYDVQQDDAhhbGljZS1jbjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKTfOG+vgXCO2MUMuURmqPMBlE3VOyHHQoEkvc1WuSRFbzwnkWG4Rfzkzy7NQjywzAf3M75kYxW5MXJZzwp2HSEwCgYIKoZIzj0EAwIDSAAwRQIgPVmLjsUMGIx31KbKRUZtFOm1GFiXnuFUo8GwEqlJfSACIQD3dfo62q68SKB8hQX0Vgh+gKocfuZ5lYc4ld87FAwKrw==");
        assert_eq!(subject_cn(&v1).as_deref(), Some("alice-cn"));
        // Truncations and garbage never panic.
        for n in 0..v3.len() {
            let _ = subject_cn(&v3[..n]);
        }
        assert_eq!(subject_cn(b"\x30\x84\xff\xff\xff\xff"), None);
        assert_eq!(subject_cn(b""), None);
    }
}

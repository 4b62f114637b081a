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
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Invalid {
                    flag: flags.client_ca,
                    path: ca.clone(),
                    message: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| mismatch(files, e))?;
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

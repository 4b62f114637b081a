//! `strata user set` on a stopped node: the first users exist before
//! anything listens.
//!
//! The command derives the SCRAM credential (the password never touches
//! the disk) and adds it to `<meta-dir>/users.pending.json` (mode 0600,
//! written to a temporary file, fsynced and renamed). When the node's
//! broker starts, before its Kafka listeners accept a connection, it
//! proposes each pending credential as a replicated command and removes
//! the file: the credentials then live in the metadata like any other.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::scram::{self, Credential, Mechanism};
use super::state::{valid_user, SecurityCommand, SecurityOutput};
use crate::meta::{Command, CommandOutput};

/// File of credentials waiting for the next start.
pub const PENDING_FILE: &str = "users.pending.json";
/// At most this many pending credentials.
const MAX_PENDING: usize = 1000;

/// One pending credential.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PendingUser {
    pub user: String,
    pub mechanism: Mechanism,
    pub credential: Credential,
}

/// Failures of the user commands; never carry a password.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a pending users file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("invalid argument {flag}: {message}")]
    Arg { flag: &'static str, message: String },
    #[error("the metadata refused the credential of {user}: {message}")]
    Refused { user: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UserError + '_ {
    move |source| UserError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Read the pending file (none: empty).
pub fn read_pending(meta_dir: &Path) -> Result<Vec<PendingUser>, UserError> {
    let path = meta_dir.join(PENDING_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&path)(e)),
    };
    serde_json::from_slice(&bytes).map_err(|e| UserError::Corrupt {
        path,
        message: e.to_string(),
    })
}

/// Add (or replace) a credential in the pending file of `meta_dir`.
pub fn add_pending(meta_dir: &Path, entry: PendingUser) -> Result<(), UserError> {
    std::fs::create_dir_all(meta_dir).map_err(io(meta_dir))?;
    let mut all = read_pending(meta_dir)?;
    all.retain(|p| !(p.user == entry.user && p.mechanism == entry.mechanism));
    if all.len() >= MAX_PENDING {
        return Err(UserError::Arg {
            flag: "NAME",
            message: format!("more than {MAX_PENDING} pending users; start the node once"),
        });
    }
    all.push(entry);
    let path = meta_dir.join(PENDING_FILE);
    let tmp = meta_dir.join(format!("{PENDING_FILE}.tmp"));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        let json = serde_json::to_vec_pretty(&all).map_err(|e| UserError::Corrupt {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
        f.write_all(&json).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    if let Ok(d) = std::fs::File::open(meta_dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Propose the pending credentials of `meta_dir` through `submit`, then
/// remove the file. Called by the broker before its listeners accept.
pub async fn apply_pending<F, Fut, E>(meta_dir: &Path, submit: F) -> Result<usize, UserError>
where
    F: Fn(Command) -> Fut,
    Fut: std::future::Future<Output = Result<CommandOutput, E>>,
    E: std::fmt::Display,
{
    let dir = meta_dir.to_path_buf();
    let pending = tokio::task::spawn_blocking(move || read_pending(&dir))
        .await
        .map_err(|e| UserError::Io {
            path: meta_dir.join(PENDING_FILE),
            source: std::io::Error::other(e.to_string()),
        })??;
    if pending.is_empty() {
        return Ok(0);
    }
    let n = pending.len();
    for p in pending {
        let user = p.user.clone();
        let cmd = Command::Security(SecurityCommand::UpsertScram {
            user: p.user,
            mechanism: p.mechanism,
            credential: p.credential,
        });
        match submit(cmd).await {
            Ok(CommandOutput::Security(SecurityOutput::ScramUpserted)) => {
                tracing::info!(user, "SCRAM credential from `strata user set` applied");
            }
            Ok(other) => {
                return Err(UserError::Refused {
                    user,
                    message: format!("{other:?}"),
                })
            }
            Err(e) => {
                return Err(UserError::Refused {
                    user,
                    message: e.to_string(),
                })
            }
        }
    }
    let path = meta_dir.join(PENDING_FILE);
    std::fs::remove_file(&path).map_err(io(&path))?;
    Ok(n)
}

/// `strata user` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum UserCmd {
    /// Create or change a SCRAM user in a node's data directory (the node
    /// may be stopped; the credential is applied when it next starts).
    Set {
        /// User name.
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// PBKDF2 iterations (4096..=16384).
        #[arg(long, default_value_t = scram::MIN_ITERATIONS)]
        iterations: u32,
        /// The node's data directory.
        #[arg(long, env = "STRATA_DATA_DIR", default_value = "./strata-data")]
        data_dir: PathBuf,
        /// The node's metadata directory [default: <data-dir>/meta].
        #[arg(long, env = "STRATA_META_DIR")]
        meta_dir: Option<PathBuf>,
    },
}

/// Run a `strata user` command (blocking: reads stdin, derives the key).
pub fn run_user(cmd: UserCmd) -> Result<String, UserError> {
    match cmd {
        UserCmd::Set {
            name,
            mechanism,
            password_stdin,
            iterations,
            data_dir,
            meta_dir,
        } => {
            let mech = Mechanism::parse(&mechanism).ok_or_else(|| UserError::Arg {
                flag: "--mechanism",
                message: format!("expected SCRAM-SHA-256 or SCRAM-SHA-512, got {mechanism:?}"),
            })?;
            if !valid_user(&name) {
                return Err(UserError::Arg {
                    flag: "NAME",
                    message: "user names are 1..=256 printable characters".into(),
                });
            }
            if !(scram::MIN_ITERATIONS..=scram::MAX_ITERATIONS).contains(&iterations) {
                return Err(UserError::Arg {
                    flag: "--iterations",
                    message: format!(
                        "must be {}..={}, got {iterations}",
                        scram::MIN_ITERATIONS,
                        scram::MAX_ITERATIONS
                    ),
                });
            }
            if !password_stdin {
                return Err(UserError::Arg {
                    flag: "--password-stdin",
                    message: "the password is read from standard input only (never a flag, \
                              which other users could see)"
                        .into(),
                });
            }
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(io(Path::new("<stdin>")))?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(UserError::Arg {
                    flag: "--password-stdin",
                    message: "empty password".into(),
                });
            }
            let credential = Credential::from_password(
                mech,
                password.as_bytes(),
                scram::random_bytes(32),
                iterations,
            );
            let meta_dir = meta_dir.unwrap_or_else(|| data_dir.join("meta"));
            add_pending(
                &meta_dir,
                PendingUser {
                    user: name.clone(),
                    mechanism: mech,
                    credential,
                },
            )?;
            Ok(format!(
                "{} credential of {name} written to {}; it is applied when the node starts",
                mech.name(),
                meta_dir.join(PENDING_FILE).display()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pending_users_are_proposed_once_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cred = Credential::from_password(Mechanism::Sha512, b"pw", vec![3; 16], 4096);
        for user in ["admin", "admin", "bob"] {
            add_pending(
                dir.path(),
                PendingUser {
                    user: user.into(),
                    mechanism: Mechanism::Sha512,
                    credential: cred.clone(),
                },
            )
            .unwrap();
        }
        assert_eq!(read_pending(dir.path()).unwrap().len(), 2);
        let state = parking_lot::Mutex::new(crate::meta::MetaState::new());
        let n = apply_pending(dir.path(), |cmd| {
            let r = state.lock().apply(cmd);
            async move { r }
        })
        .await
        .unwrap();
        assert_eq!(n, 2);
        assert!(state
            .lock()
            .security
            .credential("admin", Mechanism::Sha512)
            .is_some());
        assert!(!dir.path().join(PENDING_FILE).exists());
        assert_eq!(read_pending(dir.path()).unwrap().len(), 0);
    }
}

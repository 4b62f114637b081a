//! The `strata` binary: parse flags, load config, run.

use anyhow::Context;
use clap::{Parser, Subcommand};
use strata::telemetry;

/// Strata: a Kafka-compatible streaming broker whose durable home is object storage.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker (with no flags: Kafka on :9092, HTTP on :8080, data in ./strata-data).
    ///
    /// Every flag can also be set with an environment variable STRATA_<FLAG>
    /// or as a key of the --config TOML file; precedence is
    /// flag > environment > file > default.
    Serve(Box<strata::config::ServeArgs>),
    /// Manage topics on a running broker.
    #[command(subcommand)]
    Topic(strata::cli::TopicCmd),
    /// Manage consumer groups on a running broker.
    #[command(subcommand)]
    Group(strata::group_cli::GroupCmd),
    /// Controller quorum status and membership.
    #[command(subcommand)]
    Controller(strata::controller::cli::ControllerCmd),
    /// List and describe transactions.
    #[command(subcommand)]
    Txn(strata::cli::TxnCmd),
    /// Set, remove and list client quotas on a running broker.
    #[command(subcommand)]
    Quota(strata::quotas::cli::QuotaCmd),
    /// SCRAM users (works on a stopped node's data directory).
    #[command(subcommand)]
    User(strata::auth::bootstrap::UserCmd),
    /// Hand a running broker's partitions and group coordinators to the
    /// other brokers and stop its writes (a Kubernetes preStop hook); it
    /// exits on the SIGTERM that follows.
    Drain(strata::cli::DrainArgs),
}

fn main() {
    // Errors are printed once, with their causes, without a backtrace.
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tune_allocator();
    // Configuration first: the OTLP exporter is one of its settings.
    let (config, admin) = match cli.command {
        Command::Serve(args) => (Some(args.resolve()?), None),
        other => (None, Some(other)),
    };
    let otlp = config.as_ref().and_then(|c| {
        c.otlp_endpoint.as_deref().map(|endpoint| telemetry::Otlp {
            endpoint,
            service_name: &c.otlp_service_name,
        })
    });
    let _telemetry = telemetry::init(otlp)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    if let Some(config) = config {
        // Handlers installed before anything starts: SIGTERM during the
        // start is a stop request, not the default action.
        let stop = {
            let _rt = rt.enter();
            shutdown_signal().context("cannot install the SIGTERM and SIGINT handlers")?
        };
        rt.block_on(strata::server::run(config, stop))?;
    }
    match admin {
        Some(Command::Topic(cmd)) => rt.block_on(strata::cli::run_topic(cmd))?,
        Some(Command::Group(cmd)) => rt.block_on(strata::group_cli::run_group(cmd))?,
        Some(Command::Controller(cmd)) => {
            rt.block_on(strata::controller::cli::run_controller(cmd))?
        }
        Some(Command::Txn(cmd)) => rt.block_on(strata::cli::run_txn(cmd))?,
        Some(Command::Quota(cmd)) => rt.block_on(strata::quotas::cli::run_quota(cmd))?,
        Some(Command::User(cmd)) => println!("{}", strata::auth::bootstrap::run_user(cmd)?),
        Some(Command::Drain(args)) => rt.block_on(strata::cli::run_drain(args))?,
        Some(Command::Serve(_)) | None => {}
    }
    // The runtime goes first so in-flight spans end before the exporter flushes.
    drop(rt);
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT; the handlers are installed
/// when this is called (inside the runtime), not when it is first polled.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// Record batches are large, short-lived buffers (often ~1 MiB). glibc's
/// adaptive mmap threshold would grow without bound after the first large
/// free; a fixed threshold above the usual produce request size keeps those
/// buffers on the heap, where they are reused without a page fault per 4 KiB
/// (mmap'ing every request cost a quarter of the produce path's CPU), while
/// bigger ones (large fetch responses) still go back to the OS when freed.
/// Fewer arenas bound per-thread caches. glibc's own settings
/// (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_ARENA_MAX`, `GLIBC_TUNABLES`) win.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |var: &str| {
            std::env::var_os(var).is_some() || std::env::var_os("GLIBC_TUNABLES").is_some()
        };
        // SAFETY: mallopt only changes allocator parameters; called once at
        // start before other threads exist.
        unsafe {
            if !set("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
            }
            if !set("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 4);
            }
        }
    }
}

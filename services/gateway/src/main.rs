//! `gateway`: run the mcpgw gateway or check its config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::config::GatewayConfig;

#[derive(Parser)]
#[command(name = "gateway", version, about = "mcpgw gateway: the MCP data plane")]
struct Cli {
    /// A TOML file with settings over the embedded defaults (see docs/CONFIGURATION.md).
    #[arg(long, short, env = "MCPGW_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Load and validate the configuration, print a summary, and exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Exit 0 if the gateway at the configured address answers /health (for container
    /// health checks).
    Healthcheck,
}

/// The static (musl) images: musl's allocator serializes every thread on one lock, which a
/// multi-threaded server pays for on each allocation; mimalloc keeps per-thread heaps.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// At most two glibc malloc arenas. glibc gives threads that contend for the allocator arenas of
/// their own (up to eight per core), and memory freed in one arena is not reused by another:
/// with 10,000 open streams the gateway held about 5% more memory with the default, and
/// throughput did not change with two (docs/performance.md). Set before any thread starts.
// `allow`, not `expect`: on other targets than glibc the unsafe block is compiled out and the
// lint does not fire.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    // The stdio sandbox helper (`stdio_sandbox.rs`): decided before anything else runs, so it
    // stays single-threaded and reads no configuration or environment.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(
            gateway::stdio_sandbox::EXEC_SUBCOMMAND,
        ))
    {
        return gateway::stdio_sandbox::exec_main();
    }
    limit_malloc_arenas();
    let cli = Cli::parse();
    let config = match GatewayConfig::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!(
            "configuration ok: listen {}, metrics {}, registry {}, {} trusted issuer(s), public URL {}",
            config.listen,
            config.metrics_listen,
            config.registry.url,
            config.auth.issuers.len(),
            config.public_url
        );
        return ExitCode::SUCCESS;
    }
    mcpgw_core::serve::run(async move {
        match cli.command {
            Some(Command::Healthcheck) => mcpgw_core::serve::healthcheck(config.listen).await,
            _ => serve(config).await,
        }
    })
}

async fn serve(config: GatewayConfig) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    mcpgw_core::telemetry::init_logging(&config.log)?;
    let running = gateway::app::start(config).await?;
    mcpgw_core::serve::shutdown_signal().await;
    tracing::info!("stopping: finishing requests in flight and flushing audit events");
    running.stop().await;
    Ok(())
}

//! `gateway`: run the mcpgw gateway or check its config. The command line, exit codes and
//! config load are core's (`mcpgw_core::service`).

use std::process::ExitCode;

use gateway::config::GatewayConfig;
use mcpgw_core::service::{Binary, Cli, Common, run_main};

const BINARY: Binary = Binary {
    name: "gateway",
    about: "mcpgw gateway: the MCP data plane",
    config_env: "MCPGW_GATEWAY_CONFIG",
    config_help: "A TOML file with settings over the embedded defaults (see docs/CONFIGURATION.md)",
    serve_about: "Serve (the default)",
};

mcpgw_core::musl_allocator!();

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
    let cli = Cli::<Common>::parse_for(&BINARY);
    run_main(
        cli,
        GatewayConfig::load,
        check,
        |config, command| async move {
            match command {
                Some(Common::Healthcheck) => mcpgw_core::serve::healthcheck(config.listen).await,
                _ => serve(config).await,
            }
        },
    )
}

/// `--check-config`: the configuration loaded; print its summary.
async fn check(config: GatewayConfig) -> anyhow::Result<()> {
    println!(
        "configuration ok: listen {}, metrics {}, registry {}, {} trusted issuer(s), public URL {}",
        config.listen,
        config.metrics_listen,
        config.registry.url,
        config.auth.issuers.len(),
        config.public_url
    );
    Ok(())
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

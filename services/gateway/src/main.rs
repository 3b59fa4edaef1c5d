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

/// mimalloc on every target, as in the images (musl's own allocator serializes threads on one
/// lock): glibc's malloc and free were a sixth of the gateway's instructions per proxied call.
/// Its memory settings come from the environment (`MIMALLOC_PURGE_DELAY=0`,
/// `MIMALLOC_ARENA_EAGER_COMMIT=0` in the image: freed memory goes back at once, arenas are
/// committed as used; docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

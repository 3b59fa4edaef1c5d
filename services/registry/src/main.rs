//! `registry`: run the mcpgw registry, check its config, or mint a break-glass admin key. The
//! command line, exit codes and config load are core's (`mcpgw_core::service`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use mcpgw_core::service::{Binary, Cli, Common, print_openapi, run_main};
use registry::app;
use registry::config::RegistryConfig;

const BINARY: Binary = Binary {
    name: "registry",
    about: "mcpgw registry: the catalog of MCP servers",
    config_env: "MCPGW_REGISTRY_CONFIG",
    config_help: "A TOML file with settings over the embedded defaults (see docs/CONFIGURATION.md)",
    serve_about: "Serve the API (the default)",
};

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Common(Common),
    /// Create a new admin API key directly in the store and print it (break-glass access).
    AdminKey {
        #[arg(long, default_value = "break-glass admin")]
        name: String,
    },
    /// Create an API key with only the gateway:sync permission (what a gateway process needs)
    /// and print it, or write it to a file (mode 0600) that is kept when it exists.
    GatewayKey {
        #[arg(long, default_value = "gateway")]
        name: String,
        /// Write the key here instead of printing it; an existing file is left alone.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Print the OpenAPI document.
    Openapi,
}

mcpgw_core::musl_allocator!();

fn main() -> ExitCode {
    let cli = Cli::<Command>::parse_for(&BINARY);
    if matches!(cli.command, Some(Command::Openapi)) {
        return print_openapi(&registry::api::openapi());
    }
    run_main(
        cli,
        RegistryConfig::load,
        check,
        |config, command| async move {
            match command {
                Some(Command::AdminKey { name }) => admin_key(config, &name).await,
                Some(Command::GatewayKey { name, output }) => {
                    gateway_key(config, &name, output).await
                }
                Some(Command::Common(Common::Healthcheck)) => {
                    mcpgw_core::serve::healthcheck(config.listen).await
                }
                _ => serve(config).await,
            }
        },
    )
}

/// `--check-config`: everything a start would refuse, without starting (the key is loaded
/// only when one is configured, so the check creates no files).
async fn check(config: RegistryConfig) -> anyhow::Result<()> {
    let config = &config;
    mcpgw_core::telemetry::parse_filter(&config.log.filter)?;
    let s = &config.secrets;
    let key_configured = s.sealing_key.is_configured();
    if key_configured {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        app::load_keyring(config).await?;
    }
    // The embedding provider's URL against the egress policy, and its API key (never printed).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let semantic = registry::embeddings::Embeddings::from_config(config).await?;
    println!(
        "configuration OK: listen={} metrics={} store={} stage={:?} egress(loopback={}, private={}) key={} search={}",
        config.listen,
        config.metrics_listen,
        config.store_url().split(':').next().unwrap_or(""),
        config.stage,
        config.egress.allow_loopback,
        config.egress.allow_private,
        if key_configured {
            "loaded"
        } else {
            "generated in data_dir at first start"
        },
        if semantic.is_some() {
            "hybrid"
        } else {
            "lexical"
        }
    );
    Ok(())
}

async fn serve(config: RegistryConfig) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    mcpgw_core::telemetry::init_logging(&config.log)?;
    let key_file = config.bootstrap.admin_key_file.clone();
    let running = app::start(config).await?;
    match &running.bootstrap_key {
        // Written to the file: not printed too, since stderr goes to the log store in
        // deployments, and a log line is no place for a credential.
        Some(_) if !key_file.is_empty() => {
            eprintln!("bootstrap admin API key created and written to {key_file} (not shown here)")
        }
        Some(key) => announce_bootstrap_key(key, running.addr),
        None => {}
    }
    eprintln!(
        "mcpgw registry listening on http://{} (metrics on http://{}/metrics, API docs at /api/v1/openapi.json)",
        running.addr, running.metrics_addr
    );
    if let Some(demo) = running.demo_addr {
        eprintln!("demo MCP server: http://{demo}/mcp (registered as \"demo\")");
    }
    mcpgw_core::serve::shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

fn announce_bootstrap_key(key: &str, addr: std::net::SocketAddr) {
    eprintln!();
    eprintln!("  ┌─ bootstrap admin API key (shown once; store it now) ─────────────────");
    eprintln!("  │ {key}");
    eprintln!("  │ try: curl -H 'Authorization: Bearer {key}' http://{addr}/api/v1/servers");
    eprintln!("  │ lost it? run `registry admin-key` with the same config for a new one");
    eprintln!("  └──────────────────────────────────────────────────────────────────────");
    eprintln!();
}

async fn gateway_key(
    config: RegistryConfig,
    name: &str,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    if let Some(path) = &output
        && path.exists()
    {
        eprintln!("{} exists; keeping the key in it", path.display());
        return Ok(());
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let keyring = app::load_keyring(&config).await?;
    let state = app::build_state(config, keyring).await?;
    let key = state
        .registry
        .create_cli_key(name, vec![mcpgw_core::auth::Permission::GatewaySync])
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match output {
        None => println!("{key}"),
        Some(path) => {
            app::write_private(&path.display().to_string(), &key)?;
            eprintln!("gateway API key written to {}", path.display());
        }
    }
    Ok(())
}

async fn admin_key(config: RegistryConfig, name: &str) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let keyring = app::load_keyring(&config).await?;
    let state = app::build_state(config, keyring).await?;
    let key = state
        .registry
        .create_admin_key(name)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{key}");
    Ok(())
}

//! `registry`: run the mcpgw registry, check its config, or mint a break-glass admin key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use registry::app;
use registry::config::RegistryConfig;

#[derive(Parser)]
#[command(
    name = "registry",
    version,
    about = "mcpgw registry: the catalog of MCP servers"
)]
struct Cli {
    /// A TOML file with settings over the embedded defaults (see docs/CONFIGURATION.md).
    #[arg(long, short, env = "MCPGW_REGISTRY_CONFIG")]
    config: Option<PathBuf>,
    /// Load and validate the configuration, print a summary, and exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Create a new admin API key directly in the store and print it (break-glass access).
    AdminKey {
        #[arg(long, default_value = "break-glass admin")]
        name: String,
    },
    /// Exit 0 if the registry at the configured address answers /health (for container
    /// health checks).
    Healthcheck,
    /// Print the OpenAPI document.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Openapi)) {
        println!(
            "{}",
            registry::api::openapi()
                .to_pretty_json()
                .unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let config = match RegistryConfig::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let check_config = cli.check_config;
    let result = runtime.block_on(async move {
        if check_config {
            return check(&config).await;
        }
        match cli.command {
            Some(Command::AdminKey { name }) => admin_key(config, &name).await,
            Some(Command::Healthcheck) => healthcheck(&config).await,
            _ => serve(config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--check-config`: everything a start would refuse, without starting (the key is loaded
/// only when one is configured, so the check creates no files).
async fn check(config: &RegistryConfig) -> anyhow::Result<()> {
    mcpgw_core::telemetry::parse_filter(&config.log.filter)?;
    let s = &config.secrets;
    let key_configured = !secrecy::ExposeSecret::expose_secret(&s.encryption_key).is_empty()
        || !s.encryption_key_file.is_empty()
        || !s.encryption_key_secret_id.is_empty();
    if key_configured {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        app::load_keyring(config).await?;
    }
    println!(
        "configuration OK: listen={} metrics={} store={} stage={:?} egress(loopback={}, private={}) key={}",
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
        }
    );
    Ok(())
}

async fn serve(config: RegistryConfig) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    mcpgw_core::telemetry::init_logging(&config.log)?;
    let running = app::start(config).await?;
    if let Some(key) = &running.bootstrap_key {
        announce_bootstrap_key(key, running.addr);
    }
    eprintln!(
        "mcpgw registry listening on http://{} (metrics on http://{}/metrics, API docs at /api/v1/openapi.json)",
        running.addr, running.metrics_addr
    );
    if let Some(demo) = running.demo_addr {
        eprintln!("demo MCP server: http://{demo}/mcp (registered as \"demo\")");
    }
    shutdown_signal().await;
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

async fn healthcheck(config: &RegistryConfig) -> anyhow::Result<()> {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut stream = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer from {addr} within 3 s"))??;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(3),
        stream.read_to_end(&mut response),
    )
    .await
    .map_err(|_| anyhow::anyhow!("/health did not finish within 3 s"))??;
    if response.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        anyhow::bail!("/health did not answer 200")
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

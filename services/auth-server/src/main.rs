//! `auth-server`: run the mcpgw auth-server, check its config, or reset a local password. The
//! command line, exit codes and config load are core's (`mcpgw_core::service`).

use std::process::ExitCode;

use auth_server::app;
use auth_server::config::AuthConfig;
use clap::Subcommand;
use mcpgw_core::service::{Binary, Cli, Common, print_openapi, run_main};
use secrecy::ExposeSecret;

const BINARY: Binary = Binary {
    name: "auth-server",
    about: "mcpgw auth-server: login, sessions, token vending, /validate",
    config_env: "MCPGW_AUTH_CONFIG",
    config_help: "A TOML file with settings over the embedded defaults (see services/auth-server/config/default.toml)",
    serve_about: "Serve (the default)",
};

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Common(Common),
    /// Set a new generated password for a local user and print it (break-glass access).
    ResetPassword {
        #[arg(long, default_value = "admin")]
        username: String,
    },
    /// Print the OpenAPI document.
    Openapi,
}

mcpgw_core::musl_allocator!();

fn main() -> ExitCode {
    let cli = Cli::<Command>::parse_for(&BINARY);
    if matches!(cli.command, Some(Command::Openapi)) {
        return print_openapi(&auth_server::api::openapi());
    }
    run_main(cli, AuthConfig::load, check, |config, command| async move {
        match command {
            Some(Command::ResetPassword { username }) => reset_password(config, &username).await,
            Some(Command::Common(Common::Healthcheck)) => {
                mcpgw_core::serve::healthcheck(config.listen).await
            }
            _ => serve(config).await,
        }
    })
}

/// `--check-config`: everything a start would refuse, without starting (secrets are read only
/// when configured, so the check creates no files).
async fn check(config: AuthConfig) -> anyhow::Result<()> {
    let config = &config;
    mcpgw_core::telemetry::parse_filter(&config.log.filter)?;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let key_configured = config.secrets.key_configured();
    if key_configured {
        app::load_keyring(config).await?;
    }
    if config.store.backend.password.is_configured() {
        config
            .store
            .backend
            .password
            .resolve(&config.secrets.aws)
            .await
            .map_err(|e| anyhow::anyhow!("store.password: {e}"))?;
    }
    for p in &config.oidc.providers {
        if p.client_secret.is_configured() {
            p.client_secret
                .resolve(&config.secrets.aws)
                .await
                .map_err(|e| anyhow::anyhow!("oidc provider {}: client_secret: {e}", p.id))?;
        }
    }
    println!(
        "configuration OK: listen={} metrics={} public_url={} store={} local_users={} oidc_providers={} trusted_issuers={} key={}",
        config.listen,
        config.metrics_listen,
        config.public_url(config.listen),
        config.store_url().split(':').next().unwrap_or(""),
        config.local.enabled,
        config.oidc.providers.len(),
        config.validate.issuers.len(),
        if key_configured {
            "loaded"
        } else {
            "generated in data_dir at first start"
        }
    );
    Ok(())
}

async fn serve(config: AuthConfig) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    mcpgw_core::telemetry::init_logging(&config.log)?;
    let running = app::start(config).await?;
    if let Some(password) = &running.bootstrap_password {
        let local = &running.state.config.local;
        eprintln!();
        eprintln!("  ┌─ bootstrap administrator (password shown once; store it now) ────────");
        eprintln!("  │ username: {}", local.bootstrap_admin);
        eprintln!("  │ password: {}", password.expose_secret());
        eprintln!("  │ sign in at {}/login", running.public_url);
        eprintln!("  │ lost it? run `auth-server reset-password` with the same config");
        eprintln!("  └──────────────────────────────────────────────────────────────────────");
        eprintln!();
    }
    eprintln!(
        "mcpgw auth-server listening on http://{} (public {}; metrics on http://{}/metrics; API docs at /api/v1/openapi.json)",
        running.addr, running.public_url, running.metrics_addr
    );
    mcpgw_core::serve::shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

async fn reset_password(config: AuthConfig, username: &str) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let keyring = app::load_keyring(&config).await?;
    let public_url = config.public_url(config.listen);
    let state = app::build_state(config, keyring, public_url).await?;
    let password = app::reset_password(&state, username).await?;
    println!("{}", password.expose_secret());
    Ok(())
}

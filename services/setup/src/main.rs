//! `mcpgw-setup`: the post-deploy setup (see the library docs and docs/deployment.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mcpgw_setup::inputs::{Overrides, RawInputs, output};
use mcpgw_setup::output::Output;
use mcpgw_setup::{Options, Step};
use secrecy::SecretString;

#[derive(Parser)]
#[command(
    name = "mcpgw-setup",
    version,
    about = "Post-deploy setup of mcpgw: Keycloak realm, client secrets, DocumentDB schema, auth database migrations, seed policies, end-to-end check",
    after_help = "Steps, in order: inputs, endpoints, keycloak, databases, secrets, realm, documentdb, migrations, scopes, gateway-key, validate.\n\
Exit codes: 0 done; 1 internal error; 2 bad input (nothing changed); 3 unreachable; 4 credentials refused; 5 a change failed; 6 end-to-end check failed."
)]
struct Cli {
    /// `terraform output -json` saved to a file (`-` = standard input).
    #[arg(long, env = "MCPGW_SETUP_TERRAFORM_OUTPUTS")]
    terraform_outputs: Option<PathBuf>,
    /// The realm spec (TOML); default: the built-in spec/mcpgw.toml.
    #[arg(long, env = "MCPGW_SETUP_SPEC")]
    spec: Option<PathBuf>,
    /// Print the plan (create / update / unchanged per object) and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run only these steps (comma-separated), plus the connection steps they need.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Skip these steps (comma-separated).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Also list objects that are already as the spec says.
    #[arg(long, short)]
    verbose: bool,

    /// dev or prod; dev-only users are created only in dev. Default: prod.
    #[arg(long, env = "MCPGW_SETUP_ENVIRONMENT")]
    environment: Option<String>,
    #[arg(long, env = "MCPGW_SETUP_KEYCLOAK_URL")]
    keycloak_url: Option<String>,
    #[arg(long, env = "MCPGW_SETUP_KEYCLOAK_ADMIN_USER")]
    keycloak_admin_user: Option<String>,
    /// Prefer keycloak_admin_secret_id (Secrets Manager) in deployments.
    #[arg(
        long,
        env = "MCPGW_SETUP_KEYCLOAK_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    keycloak_admin_password: Option<String>,
    #[arg(long, env = "MCPGW_SETUP_KEYCLOAK_ADMIN_SECRET_ID")]
    keycloak_admin_secret_id: Option<String>,
    #[arg(long, env = "MCPGW_SETUP_REGISTRY_URL")]
    registry_url: Option<String>,
    #[arg(long, env = "MCPGW_SETUP_GATEWAY_URL")]
    gateway_url: Option<String>,
    #[arg(long, env = "MCPGW_SETUP_AUTH_SERVER_URL")]
    auth_server_url: Option<String>,
    /// DocumentDB's `host:port`, with documentdb_secret_id.
    #[arg(long, env = "MCPGW_SETUP_DOCUMENTDB_ENDPOINT")]
    documentdb_endpoint: Option<String>,
    /// The DocumentDB master-user secret: `{"username": …, "password": …}`.
    #[arg(long, env = "MCPGW_SETUP_DOCUMENTDB_SECRET_ID")]
    documentdb_secret_id: Option<String>,
    /// Aurora PostgreSQL's `host:port`, with aurora_secret_id.
    #[arg(long, env = "MCPGW_SETUP_AURORA_ENDPOINT")]
    aurora_endpoint: Option<String>,
    /// The Aurora master-user secret (the managed one): `{"username": …, "password": …}`.
    #[arg(long, env = "MCPGW_SETUP_AURORA_SECRET_ID")]
    aurora_secret_id: Option<String>,
    /// A full MongoDB/DocumentDB URL (instead of documentdb_endpoint + documentdb_secret_id).
    #[arg(long, env = "MCPGW_SETUP_MONGODB_URL", hide_env_values = true)]
    mongodb_url: Option<String>,
    /// The RDS CA bundle (global-bundle.pem) for TLS to DocumentDB.
    #[arg(long, env = "MCPGW_SETUP_DOCUMENTDB_CA_FILE")]
    documentdb_ca_file: Option<PathBuf>,
    /// TLS to DocumentDB and Aurora when reached by endpoint + secret; `false` only for
    /// local stacks without TLS.
    #[arg(long, env = "MCPGW_SETUP_DATABASE_TLS", default_value_t = true, action = clap::ArgAction::Set)]
    database_tls: bool,
    #[arg(long, env = "MCPGW_SETUP_DOCUMENTDB_DATABASE")]
    documentdb_database: Option<String>,
    /// A full PostgreSQL URL (instead of aurora_endpoint + aurora_secret_id).
    #[arg(long, env = "MCPGW_SETUP_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    #[arg(long, env = "MCPGW_SETUP_AURORA_DATABASE")]
    aurora_database: Option<String>,
    /// Prefix of the secrets this program generates.
    #[arg(long, env = "MCPGW_SETUP_SECRET_PREFIX")]
    secret_prefix: Option<String>,
    /// Keep secrets as files in this directory instead of AWS Secrets Manager.
    #[arg(long, env = "MCPGW_SETUP_SECRETS_DIR")]
    secrets_dir: Option<PathBuf>,
    #[arg(long, env = "MCPGW_SETUP_AWS_REGION")]
    aws_region: Option<String>,
    /// A Secrets Manager endpoint (an emulator).
    #[arg(long, env = "MCPGW_SETUP_AWS_ENDPOINT_URL")]
    aws_endpoint_url: Option<String>,
    /// Longest wait for DNS and the endpoints, in seconds.
    #[arg(long, default_value_t = 600)]
    wait_endpoints: u64,
    /// Longest wait for Keycloak, in seconds.
    #[arg(long, default_value_t = 300)]
    wait_keycloak: u64,
}

fn steps(names: &[String], flag: &str) -> Result<Vec<Step>, String> {
    names
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| {
            Step::parse(n.trim()).ok_or_else(|| {
                format!(
                    "--{flag} {n:?}: no such step; steps are {}",
                    Step::ALL.map(|s| s.name()).join(", ")
                )
            })
        })
        .collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let usage = |message: String| {
        eprintln!("mcpgw-setup: {message}");
        ExitCode::from(2)
    };
    let (only, skip) = match (steps(&cli.only, "only"), steps(&cli.skip, "skip")) {
        (Ok(o), Ok(s)) => (o, s),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    let mut raw = match &cli.terraform_outputs {
        Some(path) => match RawInputs::from_terraform_file(path) {
            Ok(r) => r,
            Err(e) => return usage(e.to_string()),
        },
        None => RawInputs::default(),
    };
    let mut flags = RawInputs::default();
    for (name, value) in [
        (output::ENVIRONMENT, cli.environment),
        (output::AWS_REGION, cli.aws_region),
        (output::KEYCLOAK_URL, cli.keycloak_url),
        (
            output::KEYCLOAK_ADMIN_SECRET_ID,
            cli.keycloak_admin_secret_id,
        ),
        (output::REGISTRY_URL, cli.registry_url),
        (output::GATEWAY_URL, cli.gateway_url),
        (output::AUTH_SERVER_URL, cli.auth_server_url),
        (output::DOCUMENTDB_ENDPOINT, cli.documentdb_endpoint),
        (output::DOCUMENTDB_SECRET_ID, cli.documentdb_secret_id),
        (output::DOCUMENTDB_DATABASE, cli.documentdb_database),
        (output::AURORA_ENDPOINT, cli.aurora_endpoint),
        (output::AURORA_SECRET_ID, cli.aurora_secret_id),
        (output::AURORA_DATABASE, cli.aurora_database),
        (output::SECRET_PREFIX, cli.secret_prefix),
    ] {
        flags.set(name, value);
    }
    raw = raw.overlay(flags);
    let spec = match &cli.spec {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some((text, path.display().to_string())),
            Err(e) => {
                return usage(format!(
                    "cannot read the realm spec {}: {e}",
                    path.display()
                ));
            }
        },
        None => None,
    };
    let secret = |v: Option<String>| v.filter(|v| !v.is_empty()).map(SecretString::from);
    let options = Options {
        raw,
        overrides: Overrides {
            keycloak_admin_user: cli.keycloak_admin_user,
            keycloak_admin_password: secret(cli.keycloak_admin_password),
            mongodb_url: secret(cli.mongodb_url),
            postgres_url: secret(cli.postgres_url),
            documentdb_ca_file: cli.documentdb_ca_file,
            database_tls: Some(cli.database_tls),
            wait_endpoints: Some(Duration::from_secs(cli.wait_endpoints)),
            wait_keycloak: Some(Duration::from_secs(cli.wait_keycloak)),
        },
        spec,
        secrets_dir: cli.secrets_dir,
        aws_endpoint_url: cli.aws_endpoint_url,
        dry_run: cli.dry_run,
        only,
        skip,
        out: Output::stdout(cli.verbose),
    };
    let report = mcpgw_setup::run(options).await;
    ExitCode::from(report.exit_code())
}

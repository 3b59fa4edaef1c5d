//! The `mcpgw-connect` command line: parses the arguments and calls the library. Every message
//! for the person goes to stderr; stdout is the bridge's JSON-RPC channel.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use mcpgw_connect::bridge::{self, Auth};
use mcpgw_connect::credentials::Credentials;
use mcpgw_connect::discovery::{Probe, probe};
use mcpgw_connect::oauth::Browser;
use mcpgw_connect::sigv4::Signer;
use mcpgw_connect::snippets::{ClientKind, snippet, where_it_goes};
use mcpgw_connect::store::Store;
use mcpgw_connect::{ConnectError, http_client};
use url::Url;

/// Connects MCP clients to an mcpgw gateway: signs in once with a browser and bridges stdio to
/// the gateway. `mcpgw-connect <URL>` is short for `mcpgw-connect bridge <URL>`.
#[derive(Parser)]
#[command(name = "mcpgw-connect", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Signs in to the gateway URL (a server's `/{server}/mcp` or the aggregated `/mcp`) with a
    /// browser and keeps the token.
    Login {
        url: Url,
        #[command(flatten)]
        sign_in: SignIn,
    },
    /// Forgets the token of the URL.
    Logout {
        url: Url,
        #[arg(long, env = "MCPGW_CONNECT_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Bridges stdio to the URL (what an MCP client runs).
    Bridge(BridgeArgs),
    /// Prints the configuration of an MCP client that runs this bridge for the URL.
    Config {
        #[command(flatten)]
        bridge: BridgeArgs,
        #[arg(long, value_enum)]
        client: ClientKind,
    },
}

#[derive(Args)]
struct SignIn {
    /// Print the sign-in URL instead of opening a browser.
    #[arg(long, conflicts_with = "browser")]
    no_browser: bool,
    /// A command that opens the sign-in URL (the URL is appended as its last argument).
    #[arg(long, env = "MCPGW_CONNECT_BROWSER")]
    browser: Option<String>,
    /// Where tokens are kept (default `$XDG_STATE_HOME/mcpgw-connect`).
    #[arg(long, env = "MCPGW_CONNECT_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Args)]
struct BridgeArgs {
    url: Url,
    /// Show and allow every tool; without it only tools with `readOnlyHint: true` are offered.
    #[arg(long)]
    allow_write: bool,
    /// Sign requests with AWS SigV4 from the local credential chain instead of OAuth.
    #[arg(long)]
    sigv4: bool,
    /// The AWS region to sign for (default: from the host name or the AWS configuration).
    #[arg(long, requires = "sigv4")]
    region: Option<String>,
    /// The AWS service to sign for (default: from an `*.amazonaws.com` host name).
    #[arg(long, requires = "sigv4")]
    service: Option<String>,
    #[command(flatten)]
    sign_in: SignIn,
}

const SUBCOMMANDS: &[&str] = &["login", "logout", "bridge", "config", "help"];

#[tokio::main]
async fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    // `mcpgw-connect <URL> …` is the bridge (what client configurations run).
    if args
        .get(1)
        .is_some_and(|a| !a.starts_with('-') && !SUBCOMMANDS.contains(&a.as_str()))
    {
        args.insert(1, "bridge".into());
    }
    let cli = Cli::parse_from(args);
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpgw-connect: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), ConnectError> {
    let http = http_client();
    match command {
        Command::Login { url, sign_in } => {
            let store = Store::locate(sign_in.state_dir.clone())?;
            let path = store.path(url.as_str());
            let credentials = Credentials::new(http, url.clone(), store, browser(&sign_in))?;
            let entry = credentials.sign_in().await?;
            let lifetime = entry.expires_at.map_or("no stated expiry".to_owned(), |t| {
                format!(
                    "valid {} min",
                    t.saturating_sub(mcpgw_connect::oauth::now()) / 60
                )
            });
            let refresh = if entry.refresh_token.is_some() {
                "refreshed automatically"
            } else {
                "no refresh token: sign in again when it expires"
            };
            eprintln!(
                "mcpgw-connect: signed in to {url} ({lifetime}, {refresh}); token kept in {}",
                path.display()
            );
            Ok(())
        }
        Command::Logout { url, state_dir } => {
            Store::locate(state_dir)?.remove(url.as_str())?;
            eprintln!("mcpgw-connect: forgot the token of {url}");
            Ok(())
        }
        Command::Bridge(args) => {
            let auth = auth(&http, &args).await?;
            bridge::run(http, args.url, args.allow_write, auth)
                .await
                .map_err(|e| ConnectError::Stdio {
                    cause: e.to_string(),
                })
        }
        Command::Config { bridge, client } => {
            let mut args = vec![bridge.url.to_string()];
            if bridge.allow_write {
                args.push("--allow-write".into());
            }
            if bridge.sigv4 {
                args.push("--sigv4".into());
            }
            for (flag, value) in [("--region", &bridge.region), ("--service", &bridge.service)] {
                if let Some(v) = value {
                    args.extend([flag.to_owned(), v.clone()]);
                }
            }
            let program = std::env::current_exe()
                .ok()
                .and_then(|p| p.to_str().map(str::to_owned))
                .unwrap_or_else(|| "mcpgw-connect".into());
            eprintln!("# {}", where_it_goes(client));
            println!("{}", snippet(client, &bridge.url, &program, &args));
            Ok(())
        }
    }
}

fn browser(sign_in: &SignIn) -> Browser {
    match (&sign_in.browser, sign_in.no_browser) {
        (_, true) => Browser::Print,
        (Some(command), false) => Browser::Command(command.clone()),
        (None, false) => Browser::System,
    }
}

/// How the bridge authenticates: SigV4 when asked; else the saved token, or a sign-in now when
/// the URL asks for one, or nothing when it does not.
async fn auth(http: &reqwest::Client, args: &BridgeArgs) -> Result<Auth, ConnectError> {
    if args.sigv4 {
        let signer =
            Signer::from_environment(&args.url, args.region.clone(), args.service.clone()).await?;
        return Ok(Auth::SigV4(signer));
    }
    let store = Store::locate(args.sign_in.state_dir.clone())?;
    let signed_in = store.load(args.url.as_str())?.is_some();
    let credentials = Credentials::new(
        http.clone(),
        args.url.clone(),
        store,
        browser(&args.sign_in),
    )?;
    if !signed_in {
        match probe(http, &args.url).await? {
            Probe::Open(_) => return Ok(Auth::None),
            Probe::Challenge { .. } => {
                eprintln!("mcpgw-connect: {} needs a sign-in", args.url);
                credentials.sign_in().await?;
            }
        }
    }
    Ok(Auth::OAuth(Arc::new(credentials)))
}

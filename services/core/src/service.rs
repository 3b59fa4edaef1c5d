//! The skeleton every service binary's `main.rs` shares: its command line (`--config`,
//! `--check-config`, `serve`, `healthcheck`), the configuration load that exits 2, the async
//! work run by [`crate::serve::run`] (exit 1 on an error), `openapi`, and the allocator of the
//! static images.
//!
//! What stays in each `main.rs` is what differs: the subcommands of its own, what
//! `--check-config` checks and prints, and what `serve` announces. The rules:
//! - exit codes: 0 done, 1 the work failed (`error: …` with its causes), 2 the configuration
//!   does not load (`error: invalid configuration: …`), clap's own for a bad command line;
//! - the config file comes from `--config` or the service's environment variable, named in
//!   `--help`.

use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// What tells one service binary from another on its command line.
pub struct Binary {
    pub name: &'static str,
    pub about: &'static str,
    /// The environment variable that names the config file, e.g. `MCPGW_REGISTRY_CONFIG`.
    pub config_env: &'static str,
    /// The help of `--config`: where its settings are described.
    pub config_help: &'static str,
    /// The help of `serve`.
    pub serve_about: &'static str,
}

/// The command line of a service binary, with its own subcommands `Cmd` (which flatten
/// [`Common`] in).
#[derive(Parser)]
pub struct Cli<Cmd: Subcommand> {
    /// Set per binary ([`Binary::config_help`]).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Load and validate the configuration, print a summary, and exit.
    #[arg(long)]
    pub check_config: bool,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

impl<Cmd: Subcommand> Cli<Cmd> {
    /// Parses the process's arguments (exits with clap's message and code when they are wrong,
    /// or after `--help` / `--version`).
    pub fn parse_for(binary: &Binary) -> Self {
        let mut command = <Self as CommandFactory>::command()
            .name(binary.name)
            .bin_name(binary.name)
            // Every crate has the workspace's version.
            .version(env!("CARGO_PKG_VERSION"))
            .about(binary.about)
            .mut_arg("config", |a| a.env(binary.config_env).help(binary.config_help))
            .mut_subcommand("serve", |s| s.about(binary.serve_about))
            .mut_subcommand("healthcheck", |s| {
                s.about(format!(
                    "Exit 0 if the {} at the configured address answers /health (for container health checks)",
                    binary.name
                ))
            });
        // `serve` first, `healthcheck` and `openapi` last, the binary's own in between.
        let rank = |name: &str| match name {
            "serve" => 0,
            "healthcheck" => 2,
            "openapi" => 3,
            _ => 1,
        };
        let mut names: Vec<String> = command
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect();
        names.sort_by_key(|n| rank(n)); // stable: the binary's own keep their order
        for (order, name) in names.iter().enumerate() {
            command = command.mut_subcommand(name, |s| s.display_order(order));
        }
        let mut matches = command.get_matches();
        Self::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit())
    }
}

/// The subcommands every service binary has.
#[derive(Subcommand)]
pub enum Common {
    /// Serve (the default; the text is the binary's [`Binary::serve_about`]).
    Serve,
    /// Exit 0 if the service answers /health (the text names the binary: [`Cli::parse_for`]).
    Healthcheck,
}

/// What `main` does after parsing: loads the configuration (printed and exit 2 when it does
/// not load), then runs `check` for `--check-config` or else `work` with the subcommand, on
/// [`crate::serve::run`] (exit 0, or 1 with the error).
pub fn run_main<C, Cmd, E, Check, Work>(
    cli: Cli<Cmd>,
    load: impl FnOnce(Option<&Path>) -> Result<C, E>,
    check: impl FnOnce(C) -> Check,
    work: impl FnOnce(C, Option<Cmd>) -> Work,
) -> ExitCode
where
    Cmd: Subcommand,
    E: Display,
    Check: Future<Output = anyhow::Result<()>>,
    Work: Future<Output = anyhow::Result<()>>,
{
    let config = match load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        crate::serve::run(check(config))
    } else {
        crate::serve::run(work(config, cli.command))
    }
}

/// The `openapi` subcommand: prints the document and exits 0.
pub fn print_openapi(api: &utoipa::openapi::OpenApi) -> ExitCode {
    println!("{}", api.to_pretty_json().unwrap_or_default());
    ExitCode::SUCCESS
}

/// The allocator of the static (musl) images, for a binary crate's root: musl's allocator
/// serializes every thread on one lock, which a multi-threaded server pays for on each
/// allocation; mimalloc keeps per-thread heaps. The binary depends on `mimalloc` for musl
/// targets.
#[macro_export]
macro_rules! musl_allocator {
    () => {
        #[cfg(target_env = "musl")]
        #[global_allocator]
        static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
    };
}

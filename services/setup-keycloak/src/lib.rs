//! `mcpgw-setup-keycloak`: the part of `mcpgw-setup` that needs neither the registry nor the
//! auth-server: the inputs, the realm spec, the secrets store, Keycloak's admin API and the realm
//! reconciliation, and the step runner with the steps that build on them (inputs, keycloak,
//! secrets, realm).
//!
//! `mcpgw-setup` runs every step through [`run`], handing it the steps of its own (endpoints,
//! the databases and the stores of the registry and auth-server, the end-to-end check) as
//! [`MoreSteps`]. The services' tests make Keycloak realms with this crate (through
//! `mcpgw-test-support`): were it part of `mcpgw-setup`, the registry's and auth-server's tests
//! would depend on a build of their own crate (a dev-dependency loop). `scripts/check.sh` keeps
//! this crate's dependencies free of the services.
//!
//! Each run compares what the realm spec and this binary's schema say with what Keycloak,
//! Secrets Manager, DocumentDB and Aurora hold, and changes only what differs (`--dry-run`
//! prints the plan instead). Every input is checked, and every credential tried, before the
//! first write, so bad input changes nothing; each write is idempotent, so a run that stopped
//! half-way is finished by running again. docs/deployment.md shows a run.

pub mod error;
pub mod inputs;
pub mod keycloak;
pub mod output;
pub mod secrets;
pub mod spec;
mod steps;
pub mod wait;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mcpgw_core::plan::{Change, Tally};

use crate::error::{Result, SetupError};
use crate::inputs::{Inputs, Overrides, RawInputs};
use crate::output::{Output, duration};
use crate::secrets::SecretStore;
use crate::spec::Spec;

/// The steps, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Check the Terraform outputs, flags and the realm spec (no network).
    Inputs,
    /// Wait until the public endpoints resolve in DNS and answer over HTTP(S).
    Endpoints,
    /// Wait for Keycloak and sign in to its admin API.
    Keycloak,
    /// Connect to DocumentDB and Aurora with their credentials (nothing written).
    Databases,
    /// Generate the client secrets and dev users' passwords that do not exist yet.
    Secrets,
    /// Ensure the realm: settings, client scopes, groups, clients, mappers, service
    /// accounts and (dev only) users.
    Realm,
    /// Ensure the registry's collections, indexes and validators.
    Documentdb,
    /// Run the auth-server's database migrations.
    Migrations,
    /// Seed the registry's scope documents (policy).
    Scopes,
    /// The gateways' API key for the registry, in a secret they read.
    GatewayKey,
    /// An M2M token, then the gateway's aggregated endpoint lists tools.
    Validate,
}

impl Step {
    pub const ALL: [Step; 11] = [
        Step::Inputs,
        Step::Endpoints,
        Step::Keycloak,
        Step::Databases,
        Step::Secrets,
        Step::Realm,
        Step::Documentdb,
        Step::Migrations,
        Step::Scopes,
        Step::GatewayKey,
        Step::Validate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Inputs => "inputs",
            Step::Endpoints => "endpoints",
            Step::Keycloak => "keycloak",
            Step::Databases => "databases",
            Step::Secrets => "secrets",
            Step::Realm => "realm",
            Step::Documentdb => "documentdb",
            Step::Migrations => "migrations",
            Step::Scopes => "scopes",
            Step::GatewayKey => "gateway-key",
            Step::Validate => "validate",
        }
    }

    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The connection steps a step cannot run without.
    fn needs(self) -> &'static [Step] {
        match self {
            Step::Realm => &[Step::Keycloak],
            Step::Documentdb | Step::Migrations | Step::Scopes | Step::GatewayKey => {
                &[Step::Databases]
            }
            _ => &[],
        }
    }
}

/// Everything a run is given.
pub struct Options {
    /// Terraform outputs overlaid with flags.
    pub raw: RawInputs,
    pub overrides: Overrides,
    /// The realm spec's text and where it came from; `None` = the compiled-in default.
    pub spec: Option<(String, String)>,
    /// Keep secrets as files here instead of in AWS Secrets Manager.
    pub secrets_dir: Option<PathBuf>,
    /// A Secrets Manager endpoint (an emulator).
    pub aws_endpoint_url: Option<String>,
    pub dry_run: bool,
    /// Run only these steps (and the connection steps they need); empty = all.
    pub only: Vec<Step>,
    pub skip: Vec<Step>,
    pub out: Output,
}

/// How one step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Done, nothing changed.
    Ok,
    /// Done, with changes.
    Changed,
    /// Dry run: `changes` is the plan.
    Planned,
    /// Not selected (`--only`/`--skip`) or nothing to do in this deployment.
    Skipped,
    Failed,
}

impl StepStatus {
    fn label(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Changed => "changed",
            StepStatus::Planned => "plan",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepReport {
    pub step: Step,
    pub status: StepStatus,
    pub duration: Duration,
    pub changes: Vec<Change>,
    pub note: String,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub steps: Vec<StepReport>,
    pub tally: Tally,
    pub duration: Duration,
    pub dry_run: bool,
    /// The failure that ended the run, if one did.
    pub error: Option<SetupError>,
}

impl Report {
    pub fn exit_code(&self) -> u8 {
        self.error.as_ref().map_or(0, |e| e.class.exit_code())
    }

    pub fn step(&self, step: Step) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.step == step)
    }

    /// Creates and updates over every step.
    pub fn changes(&self) -> Vec<&Change> {
        self.steps
            .iter()
            .flat_map(|s| &s.changes)
            .filter(|c| c.is_change())
            .collect()
    }
}

/// What the steps share: checked inputs, the spec, and connections opened by the
/// connection steps for the steps after them.
pub struct Context {
    pub inputs: Inputs,
    pub spec: Spec,
    pub dry_run: bool,
    pub out: Output,
    pub http: reqwest::Client,
    pub secrets: Arc<dyn SecretStore>,
    pub keycloak: Option<keycloak::Admin>,
}

/// The steps this crate does not hold: endpoints, databases, documentdb, migrations, scopes,
/// gateway-key and validate. `mcpgw-setup` implements it (with the database connections those
/// steps share); [`KeycloakOnly`] runs none of them.
#[async_trait]
pub trait MoreSteps: Send {
    /// Runs `step`, one of those above, after the steps before it in [`Step::ALL`].
    async fn run(&mut self, step: Step, ctx: &mut Context) -> Result<Outcome>;
}

/// No steps but this crate's: for runs of the inputs, keycloak, secrets and realm steps only
/// (the test fixture's realms). Selecting another step fails that step, as input.
pub struct KeycloakOnly;

#[async_trait]
impl MoreSteps for KeycloakOnly {
    async fn run(&mut self, step: Step, _ctx: &mut Context) -> Result<Outcome> {
        Err(SetupError::input(format!(
            "the {} step is run by mcpgw-setup, not by its Keycloak library alone",
            step.name()
        )))
    }
}

/// A step's result before it is reported: what it changed and one line about it.
pub struct Outcome {
    pub changes: Vec<Change>,
    pub note: String,
    /// The step had nothing to do in this run (e.g. the end-to-end check in a dry run).
    pub skipped: bool,
}

impl Outcome {
    pub fn note(note: impl Into<String>) -> Self {
        Self::changes(Vec::new(), note)
    }

    pub fn changes(changes: Vec<Change>, note: impl Into<String>) -> Self {
        Self {
            changes,
            note: note.into(),
            skipped: false,
        }
    }

    pub fn skipped(why: impl Into<String>) -> Self {
        Self {
            skipped: true,
            ..Self::note(why)
        }
    }
}

/// Which steps run: selected by `--only`/`--skip`, plus the connection steps a selected
/// step needs. Asking to skip a connection step that a selected step needs is an error.
fn selection(only: &[Step], skip: &[Step]) -> Result<Vec<Step>> {
    if skip.contains(&Step::Inputs) {
        return Err(SetupError::input(
            "the inputs step cannot be skipped: every run checks its inputs first",
        ));
    }
    let mut chosen: Vec<Step> = Step::ALL
        .into_iter()
        .filter(|s| {
            (only.is_empty() || only.contains(s) || *s == Step::Inputs) && !skip.contains(s)
        })
        .collect();
    for s in chosen.clone() {
        for need in s.needs() {
            if skip.contains(need) {
                return Err(SetupError::input(format!(
                    "--skip {} conflicts with the {} step, which needs it; skip {} too, or run it",
                    need.name(),
                    s.name(),
                    s.name()
                )));
            }
            if !chosen.contains(need) {
                chosen.push(*need);
            }
        }
    }
    chosen.sort();
    Ok(chosen)
}

/// Runs the selected steps in order and prints each; stops at the first failure. The steps
/// this crate does not hold are run by `more`.
pub async fn run(options: Options, more: &mut dyn MoreSteps) -> Report {
    let started = Instant::now();
    let out = options.out.clone();
    let dry_run = options.dry_run;
    let mut report = Report {
        steps: Vec::new(),
        tally: Tally::default(),
        duration: Duration::ZERO,
        dry_run,
        error: None,
    };
    let chosen = match selection(&options.only, &options.skip) {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(e);
            return finish(report, &out, started);
        }
    };
    let total = chosen.len();
    out.line(&format!(
        "mcpgw-setup {}{}: {} steps ({})",
        env!("CARGO_PKG_VERSION"),
        if dry_run {
            ", dry run (nothing will be changed)"
        } else {
            ""
        },
        total,
        chosen
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // The inputs step builds the context the others share.
    let step_started = Instant::now();
    let mut ctx = match steps::inputs::run(options, &chosen).await {
        Ok((ctx, note)) => {
            let r = StepReport {
                step: Step::Inputs,
                status: StepStatus::Ok,
                duration: step_started.elapsed(),
                changes: Vec::new(),
                note,
            };
            print_step(&out, 1, total, &r);
            report.steps.push(r);
            ctx
        }
        Err(e) => {
            let r = failed(Step::Inputs, step_started.elapsed());
            print_step(&out, 1, total, &r);
            report.steps.push(r);
            report.error = Some(e);
            return finish(report, &out, started);
        }
    };

    for (i, step) in chosen.iter().copied().enumerate().skip(1) {
        let step_started = Instant::now();
        let result = steps::run(step, &mut ctx, more).await;
        let elapsed = step_started.elapsed();
        let r = match result {
            Ok(outcome) => {
                let tally = Tally::of(&outcome.changes);
                let status = if outcome.skipped {
                    StepStatus::Skipped
                } else if dry_run && tally.changes() > 0 {
                    StepStatus::Planned
                } else if tally.changes() > 0 {
                    StepStatus::Changed
                } else {
                    StepStatus::Ok
                };
                StepReport {
                    step,
                    status,
                    duration: elapsed,
                    changes: outcome.changes,
                    note: outcome.note,
                }
            }
            Err(e) => {
                let r = failed(step, elapsed);
                print_step(&out, i + 1, total, &r);
                report.steps.push(r);
                report.error = Some(e);
                return finish(report, &out, started);
            }
        };
        print_step(&out, i + 1, total, &r);
        report.tally.merge(Tally::of(&r.changes));
        report.steps.push(r);
    }
    finish(report, &out, started)
}

fn failed(step: Step, duration: Duration) -> StepReport {
    StepReport {
        step,
        status: StepStatus::Failed,
        duration,
        changes: Vec::new(),
        note: String::new(),
    }
}

fn print_step(out: &Output, index: usize, total: usize, r: &StepReport) {
    let mut line = format!(
        "[{index:>2}/{total}] {:<11} {:<8} {:>9}",
        r.step.name(),
        r.status.label(),
        duration(r.duration)
    );
    let tally = Tally::of(&r.changes);
    if !r.changes.is_empty() {
        line.push_str(&format!("  {tally}"));
    }
    if !r.note.is_empty() {
        line.push_str(if r.changes.is_empty() { "  " } else { "; " });
        line.push_str(&r.note);
    }
    out.line(&line);
    out.changes(&r.changes);
}

fn finish(mut report: Report, out: &Output, started: Instant) -> Report {
    report.duration = started.elapsed();
    match &report.error {
        None if report.dry_run => out.line(&format!(
            "plan: {} to create, {} to update, {} unchanged ({}); nothing was changed",
            report.tally.created,
            report.tally.updated,
            report.tally.unchanged,
            duration(report.duration)
        )),
        None if report.tally.changes() == 0 => out.line(&format!(
            "done: no changes, everything was already in place ({} unchanged, {})",
            report.tally.unchanged,
            duration(report.duration)
        )),
        None => out.line(&format!(
            "done: {} ({})",
            report.tally,
            duration(report.duration)
        )),
        Some(e) => {
            let done = report.tally.changes();
            out.line(&format!(
                "failed ({}, exit {}): {e}",
                e.class.label(),
                e.class.exit_code()
            ));
            if done > 0 {
                out.line(&format!(
                    "{done} change(s) were made before the failure; they are kept, and running again finishes the rest"
                ));
            } else {
                out.line("nothing was changed");
            }
        }
    }
    report
}

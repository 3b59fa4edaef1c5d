//! stdio servers run as an untrusted workload: what a registered command may be, and the
//! process it runs in.
//!
//! A stdio server's command comes from the registry, i.e. from whoever registered it; the
//! gateway runs it on its own host. Rules:
//!
//! - **Allow-list.** The command is resolved the way exec would (a bare name is looked up in
//!   `stdio.path`, never the gateway's own `PATH`; a relative path with a slash is refused), and
//!   the resolved file, with every symlink and `..` resolved, must be the resolution of an
//!   entry of `stdio.allowed_commands` or lie under one of `stdio.allowed_dirs`. Anything else
//!   is refused before anything runs; the reason reaches the caller (JSON-RPC error), the log and
//!   the health report. The canonical file is what is executed (argv[0] stays the registered
//!   name), so a symlink swapped after the check changes nothing.
//! - **The process.** The gateway starts its own binary (`gateway stdio-exec <server>`, the
//!   helper below) in a process group of its own, with an empty environment; the helper reads
//!   its instructions as one JSON line from stdin (the environment holds registered secrets, so
//!   it is neither in argv, which every local user can read, nor in the helper's own
//!   environment, which the dynamic loader would read before any limit applies), then sets
//!   the resource limits (core dumps always 0), enters the server's own directory, drops
//!   supplementary groups and switches to `run_as_uid`/`run_as_gid`, sets `no_new_privs`, marks
//!   every descriptor above 2 close-on-exec and execs the command with only `PATH`, `HOME`,
//!   `TMPDIR` and the registered variables. stdin past that first line is the MCP stream.
//! - **Who.** Children never run as root: a gateway that may switch users (root with
//!   CAP_SETUID and CAP_SETGID) runs them as `run_as_uid`/`run_as_gid` (65534 by default); an
//!   unprivileged gateway (the distroless image, uid 65532) runs them as itself, and marks
//!   itself non-dumpable (`harden_gateway_process`) so a child of the same user cannot read
//!   its memory or `/proc/<pid>/environ` or ptrace it; a gateway that is root but cannot
//!   switch refuses to start them. `run_as_gateway_user` (tests only) keeps the gateway's
//!   user.
//! - **Stop.** Ending a child kills its whole process group, so grandchildren (the Python
//!   that `uvx` starts, the node that `npx` starts) end with it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::StdioConfig;

/// The hidden subcommand of the gateway binary that applies the sandbox and execs.
pub const EXEC_SUBCOMMAND: &str = "stdio-exec";

/// Largest instruction line the helper reads (the registered environment is in it).
const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// Why a stdio server's command is not started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    #[error("the command is empty; register the program to run, e.g. \"uvx\"")]
    EmptyCommand,
    #[error(
        "the command {0:?} is a relative path; register a bare name (looked up in the gateway's stdio.path) or an absolute path"
    )]
    RelativeCommand(String),
    #[error(
        "the command {command:?} was not found in the gateway's stdio.path ({path}); install it there, or register its absolute path"
    )]
    NotFound { command: String, path: String },
    #[error("the command {command:?} cannot be run: {reason}")]
    NotRunnable { command: String, reason: String },
    #[error(
        "the gateway refuses to run {command:?} (resolved to {resolved}): it is not in the gateway's stdio.allowed_commands nor under its stdio.allowed_dirs; ask the gateway's operator to allow it, or register an allowed launcher"
    )]
    NotAllowed { command: String, resolved: String },
    #[error(
        "the gateway runs as root but may not switch users (it lacks CAP_SETUID or CAP_SETGID), and stdio servers never run as root; run the gateway as an unprivileged user or grant it both capabilities"
    )]
    RootWithoutSwitch,
    #[error("preparing the server's directory {dir}: {reason}")]
    WorkDir { dir: String, reason: String },
}

/// Whom children run as (decided once, at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// The gateway may switch users: children get this uid/gid and no supplementary groups.
    Switch { uid: u32, gid: u32 },
    /// Children share the gateway's (unprivileged, or explicitly configured) user.
    GatewayUser,
    /// Root without the right to switch: nothing is started.
    Refuse,
}

/// Resource limits of one child (0 = not limited).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limits {
    pub data_bytes: u64,
    pub processes: u64,
    pub open_files: u64,
    pub cpu_seconds: u64,
}

/// What the helper does, sent as the first line of its stdin.
#[derive(Serialize, Deserialize)]
struct Spec {
    /// The canonical file to execute.
    program: PathBuf,
    /// argv[0]: the command as registered.
    arg0: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    dir: PathBuf,
    user: Option<(u32, u32)>,
    limits: Limits,
}

/// A command ready to spawn, and the line to write to its stdin first.
pub struct Prepared {
    pub command: tokio::process::Command,
    /// Holds the registered environment (secrets): written once, never logged.
    pub spec_line: SecretString,
}

/// The gateway's side: checks commands and builds the helper invocation.
#[derive(Debug)]
pub struct StdioSandbox {
    allowed_commands: Vec<String>,
    allowed_dirs: Vec<PathBuf>,
    path: String,
    work_root: PathBuf,
    run_as: RunAs,
    limits: Limits,
    helper: PathBuf,
}

/// Cross-field rules of `[stdio]`'s sandbox keys: `(key, message)`.
pub fn check_config(c: &StdioConfig) -> Result<(), (&'static str, String)> {
    if c.run_as_uid == 0 {
        return Err((
            "stdio.run_as_uid",
            "must not be 0: stdio servers never run as root (65534 is nobody)".to_owned(),
        ));
    }
    if c.run_as_gid == 0 {
        return Err((
            "stdio.run_as_gid",
            "must not be 0: stdio servers never run in the root group (65534 is nogroup)"
                .to_owned(),
        ));
    }
    if c.path.is_empty() || c.path.split(':').any(|d| !d.starts_with('/')) {
        return Err((
            "stdio.path",
            format!(
                "{:?} must be absolute directories separated by ':', e.g. \"/usr/local/bin:/usr/bin:/bin\"",
                c.path
            ),
        ));
    }
    if let Some(bad) = c
        .allowed_commands
        .iter()
        .find(|e| e.is_empty() || (e.contains('/') && !e.starts_with('/')))
    {
        return Err((
            "stdio.allowed_commands",
            format!("{bad:?} must be a bare name such as \"uvx\" or an absolute path"),
        ));
    }
    if let Some(bad) = c.allowed_dirs.iter().find(|d| !d.is_absolute()) {
        return Err((
            "stdio.allowed_dirs",
            format!("{} must be an absolute directory", bad.display()),
        ));
    }
    if !c.work_dir.is_empty() && !Path::new(&c.work_dir).is_absolute() {
        return Err((
            "stdio.work_dir",
            format!("{:?} must be an absolute directory (or empty)", c.work_dir),
        ));
    }
    if c.max_data_bytes != 0 && c.max_data_bytes < 32 * 1024 * 1024 {
        return Err((
            "stdio.max_data_bytes",
            "must be 0 (not limited) or at least 33554432 (32 MiB): Node needs about 80 MB to start"
                .to_owned(),
        ));
    }
    if c.max_open_files != 0 && c.max_open_files < 16 {
        return Err((
            "stdio.max_open_files",
            "must be 0 (not limited) or at least 16".to_owned(),
        ));
    }
    Ok(())
}

impl StdioSandbox {
    /// From `[stdio]`; `data_dir` is the default parent of the children's directories.
    pub fn from_config(c: &StdioConfig, data_dir: &Path) -> std::io::Result<Self> {
        let helper = if c.exec_helper.is_empty() {
            std::env::current_exe()?
        } else {
            PathBuf::from(&c.exec_helper)
        };
        let work_root = if c.work_dir.is_empty() {
            std::path::absolute(data_dir.join("stdio"))?
        } else {
            PathBuf::from(&c.work_dir)
        };
        let run_as = if c.run_as_gateway_user {
            RunAs::GatewayUser
        } else if may_switch_users() {
            RunAs::Switch {
                uid: c.run_as_uid,
                gid: c.run_as_gid,
            }
        } else if rustix::process::geteuid().is_root() {
            RunAs::Refuse
        } else {
            RunAs::GatewayUser
        };
        Ok(Self {
            allowed_commands: c.allowed_commands.clone(),
            allowed_dirs: c.allowed_dirs.clone(),
            path: c.path.clone(),
            work_root,
            run_as,
            limits: Limits {
                data_bytes: c.max_data_bytes,
                processes: c.max_processes,
                open_files: c.max_open_files,
                cpu_seconds: c.max_cpu_seconds,
            },
            helper,
        })
    }

    pub fn run_as(&self) -> RunAs {
        self.run_as
    }

    /// One line for the start-up log: who children run as and what they may run.
    pub fn describe(&self) -> String {
        let who = match self.run_as {
            RunAs::Switch { uid, gid } => format!("as uid {uid} gid {gid}"),
            RunAs::GatewayUser => format!(
                "as the gateway's own user (uid {})",
                rustix::process::geteuid().as_raw()
            ),
            RunAs::Refuse => "never (root that cannot switch users)".to_owned(),
        };
        format!(
            "stdio servers run {who}; allowed commands {:?}, allowed directories {:?}",
            self.allowed_commands, self.allowed_dirs
        )
    }

    /// The file `command` names, resolved the way exec would in the children's PATH, then
    /// canonicalized.
    pub fn resolve(&self, command: &str) -> Result<PathBuf, SandboxError> {
        if command.is_empty() {
            return Err(SandboxError::EmptyCommand);
        }
        let found = if command.contains('/') {
            if !command.starts_with('/') {
                return Err(SandboxError::RelativeCommand(command.to_owned()));
            }
            PathBuf::from(command)
        } else {
            self.path
                .split(':')
                .map(|dir| Path::new(dir).join(command))
                .find(|candidate| is_executable_file(candidate))
                .ok_or_else(|| SandboxError::NotFound {
                    command: command.to_owned(),
                    path: self.path.clone(),
                })?
        };
        let real = found
            .canonicalize()
            .map_err(|e| SandboxError::NotRunnable {
                command: command.to_owned(),
                reason: e.to_string(),
            })?;
        if !is_executable_file(&real) {
            return Err(SandboxError::NotRunnable {
                command: command.to_owned(),
                reason: format!("{} is not an executable file", real.display()),
            });
        }
        Ok(real)
    }

    /// Whether the canonical file `real` is allowed.
    fn is_allowed(&self, real: &Path) -> bool {
        self.allowed_dirs
            .iter()
            .filter_map(|d| d.canonicalize().ok())
            .any(|d| real.starts_with(d))
            || self
                .allowed_commands
                .iter()
                .filter_map(|entry| self.resolve(entry).ok())
                .any(|allowed| allowed == real)
    }

    /// Checks `command` and builds the helper that runs it for `server`. Blocking file
    /// system calls (a few stats, one mkdir): fine on a start path that forks anyway.
    pub fn prepare(
        &self,
        server: &str,
        command: &str,
        args: &[String],
        env: &[(String, SecretString)],
    ) -> Result<Prepared, SandboxError> {
        if self.run_as == RunAs::Refuse {
            return Err(SandboxError::RootWithoutSwitch);
        }
        let program = self.resolve(command)?;
        if !self.is_allowed(&program) {
            return Err(SandboxError::NotAllowed {
                command: command.to_owned(),
                resolved: program.display().to_string(),
            });
        }
        let dir = self.prepare_dir(server)?;
        let mut child_env = BTreeMap::new();
        child_env.insert("PATH".to_owned(), self.path.clone());
        child_env.insert("HOME".to_owned(), dir.display().to_string());
        child_env.insert("TMPDIR".to_owned(), dir.display().to_string());
        // The registered variables win: they cannot widen what the process may do (its
        // user and limits do that), and a server may need its own PATH for what it starts.
        for (k, v) in env {
            child_env.insert(k.clone(), v.expose_secret().to_owned());
        }
        let spec = Spec {
            program,
            arg0: command.to_owned(),
            args: args.to_vec(),
            env: child_env,
            dir,
            user: match self.run_as {
                RunAs::Switch { uid, gid } => Some((uid, gid)),
                _ => None,
            },
            limits: self.limits,
        };
        let mut line = serde_json::to_string(&spec).expect("spec serializes");
        line.push('\n');
        let mut cmd = tokio::process::Command::new(&self.helper);
        cmd.arg(EXEC_SUBCOMMAND)
            .arg(server)
            .env_clear()
            // Its own group, so stopping the server can end everything it started.
            .process_group(0);
        Ok(Prepared {
            command: cmd,
            spec_line: SecretString::from(line),
        })
    }

    /// `<work_root>/<server>`: created 0700 and owned by the children's user. The root is
    /// created searchable (0711) but not listable, so children find only their own.
    fn prepare_dir(&self, server: &str) -> Result<PathBuf, SandboxError> {
        let dir = self.work_root.join(server);
        let fail = |reason: String| SandboxError::WorkDir {
            dir: dir.display().to_string(),
            reason,
        };
        if !self.work_root.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(&self.work_root)
                .map_err(|e| fail(e.to_string()))?;
        }
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(fail(
                    "it exists and is not a directory (a symlink is not followed); remove it"
                        .to_owned(),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| fail(e.to_string()))?,
            Err(e) => return Err(fail(e.to_string())),
        }
        if let RunAs::Switch { uid, gid } = self.run_as {
            std::os::unix::fs::lchown(&dir, Some(uid), Some(gid))
                .map_err(|e| fail(format!("giving it to uid {uid}: {e}")))?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail(e.to_string()))?;
        Ok(dir)
    }
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Root, or holding both CAP_SETUID and CAP_SETGID (a root without them, e.g. in a container
/// that dropped them, cannot switch).
fn may_switch_users() -> bool {
    use rustix::thread::CapabilitySet;
    rustix::thread::capabilities(None).is_ok_and(|c| {
        c.effective
            .contains(CapabilitySet::SETUID | CapabilitySet::SETGID)
    })
}

/// Makes the gateway process non-dumpable: a process of the same user (a stdio child in the
/// distroless image shares uid 65532) can then not ptrace it nor read its memory or
/// `/proc/<pid>/environ` (which may hold the sealing key), and it writes no core dump.
pub fn harden_gateway_process() {
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(error = %e, "could not make the gateway non-dumpable (PR_SET_DUMPABLE)");
    }
}

/// Ends a child's whole process group (the child and whatever it started).
pub fn kill_group(pgid: u32) {
    if let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        // ESRCH: the group is already gone.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

// ---------------------------------------------------------------------------------------
// The helper: `gateway stdio-exec <server>`, run before anything else in `main`.

/// Applies the sandbox and execs; returns only on failure (exit 126, the reason on stderr,
/// which the gateway logs and names when the start fails).
pub fn exec_main() -> ExitCode {
    match exec_sandboxed() {
        Ok(never) => match never {},
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "mcpgw stdio sandbox: {why}");
            ExitCode::from(126)
        }
    }
}

enum Never {}

fn exec_sandboxed() -> Result<Never, String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    // The uid switch below is per thread (raw syscalls): it is only sound while this is the
    // process's one thread, which it is this early in `main`.
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().to_owned()))
        });
    if threads.as_deref() != Some("1") {
        return Err(format!(
            "the helper must be single-threaded to switch users (threads: {threads:?})"
        ));
    }
    let spec = read_spec()?;
    let limit = |resource, value: Option<u64>, name: &str| {
        setrlimit(
            resource,
            Rlimit {
                current: value,
                maximum: value,
            },
        )
        .map_err(|e| format!("setting {name}: {e}"))
    };
    // No core dumps: one would write the process's memory (its secrets) to disk.
    limit(Resource::Core, Some(0), "RLIMIT_CORE")?;
    // 0 here means "not limited": the limit is then left as inherited.
    for (resource, value, name) in [
        (Resource::Data, spec.limits.data_bytes, "RLIMIT_DATA"),
        (Resource::Nproc, spec.limits.processes, "RLIMIT_NPROC"),
        (Resource::Nofile, spec.limits.open_files, "RLIMIT_NOFILE"),
        (Resource::Cpu, spec.limits.cpu_seconds, "RLIMIT_CPU"),
    ] {
        if value != 0 {
            limit(resource, Some(value), name)?;
        }
    }
    rustix::process::chdir(&spec.dir)
        .map_err(|e| format!("entering {}: {e}", spec.dir.display()))?;
    if let Some((uid, gid)) = spec.user {
        use rustix::process::{Gid, Uid};
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        rustix::thread::set_thread_groups(&[])
            .map_err(|e| format!("dropping supplementary groups: {e}"))?;
        rustix::thread::set_thread_gid(gid).map_err(|e| format!("switching to gid: {e}"))?;
        rustix::thread::set_thread_uid(uid).map_err(|e| format!("switching to uid: {e}"))?;
        if rustix::process::getuid() != uid
            || rustix::process::geteuid() != uid
            || rustix::process::getgid() != gid
            || rustix::thread::set_thread_uid(Uid::ROOT).is_ok()
        {
            return Err("the user switch did not take".to_owned());
        }
        // HOME is an absolute path: the new user must reach it, not only this process's
        // working directory (entered before the switch).
        std::fs::read_dir(&spec.dir).map_err(|e| {
            format!(
                "{} is not reachable by uid {}: {e}; make its parent directories searchable by others (chmod o+x) or set stdio.work_dir",
                spec.dir.display(),
                uid.as_raw()
            )
        })?;
    }
    // Capabilities in the ambient set would survive the exec; setuid programs would regain
    // privileges: neither for this workload.
    let _ = rustix::thread::clear_ambient_capability_set();
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("setting no_new_privs: {e}"))?;
    close_inherited_fds()?;
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new(&spec.program)
        .arg0(&spec.arg0)
        .args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .exec();
    Err(format!("running {}: {error}", spec.program.display()))
}

/// The first line of stdin, read byte by byte so nothing of the MCP stream after it is
/// consumed (std's stdin is buffered; the exec'd program gets fd 0 as it is).
fn read_spec() -> Result<Spec, String> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let mut line = Vec::with_capacity(4096);
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(fd, &mut byte) {
            Ok(0) => return Err("stdin ended before the instructions".to_owned()),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("reading the instructions: {e}")),
        }
        if line.len() > MAX_SPEC_BYTES {
            return Err("the instructions are over 1 MiB".to_owned());
        }
    }
    serde_json::from_slice(&line).map_err(|e| format!("the instructions are not valid: {e}"))
}

/// Marks every descriptor above 2 close-on-exec, so the command inherits only stdin, stdout
/// and stderr, whatever the gateway itself inherited or a library opened without O_CLOEXEC.
fn close_inherited_fds() -> Result<(), String> {
    use rustix::io::{FdFlags, fcntl_setfd};
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| format!("listing open descriptors: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    // The listing's own descriptor is closed again by now; skip what is no longer open.
    // Nothing opens a descriptor between this check and the fcntl (one thread).
    for fd in fds {
        if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
            continue;
        }
        #[expect(
            unsafe_code,
            reason = "std has no safe way to name a descriptor it did not open; fd is open (checked just above, single-threaded) and is only marked close-on-exec, which changes no ownership"
        )]
        // SAFETY: see the reason above; the borrow ends with this statement.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        fcntl_setfd(borrowed, FdFlags::CLOEXEC)
            .map_err(|e| format!("marking descriptor {fd} close-on-exec: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(extra: &str) -> StdioSandbox {
        let c = crate::config::GatewayConfig::from_toml_layers(&[extra]).unwrap();
        StdioSandbox::from_config(&c.stdio, &c.data_dir).unwrap()
    }

    #[test]
    fn a_bare_name_is_looked_up_in_the_childrens_path_and_compared_after_symlinks() {
        let s = sandbox("[stdio]\nallowed_commands = [\"sh\"]\npath = \"/usr/bin:/bin\"\n");
        let sh = s.resolve("sh").unwrap();
        assert!(
            sh.is_absolute() && sh == sh.canonicalize().unwrap(),
            "{sh:?}"
        );
        assert!(s.is_allowed(&sh));
        // The same file through `..` is the same command; another file is not.
        assert!(s.is_allowed(&s.resolve("/usr/bin/../bin/sh").unwrap()));
        assert!(!s.is_allowed(&s.resolve("/bin/ls").unwrap()));
    }

    #[test]
    fn relative_missing_and_unlisted_commands_are_refused_with_what_to_do() {
        let s = sandbox("[stdio]\nallowed_commands = [\"sh\"]\nrun_as_gateway_user = true\n");
        let e = s.prepare("x", "./sh", &[], &[]).err().unwrap();
        assert!(matches!(e, SandboxError::RelativeCommand(_)), "{e}");
        let e = s.prepare("x", "no-such-tool-here", &[], &[]).err().unwrap();
        assert!(e.to_string().contains("stdio.path"), "{e}");
        let e = s.prepare("x", "ls", &[], &[]).err().unwrap();
        assert!(
            matches!(e, SandboxError::NotAllowed { .. }) && e.to_string().contains("operator"),
            "{e}"
        );
    }

    #[test]
    fn root_is_never_a_configured_child_user() {
        let e = crate::config::GatewayConfig::from_toml_layers(&["[stdio]\nrun_as_uid = 0\n"])
            .unwrap_err();
        assert!(
            e.to_string().contains("MCPGW_GATEWAY_STDIO__RUN_AS_UID"),
            "{e}"
        );
        let e = crate::config::GatewayConfig::from_toml_layers(&[
            "[stdio]\nallowed_commands = [\"bin/uvx\"]\n",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("stdio.allowed_commands"), "{e}");
    }
}

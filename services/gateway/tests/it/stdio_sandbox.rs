//! The stdio sandbox with real children: `sandbox_probe.py` (standard library only) run by the
//! system's `/usr/bin/python3` as the unprivileged user the gateway switches to, reporting its
//! user, directory, environment, descriptors, limits and process group, and what it may read
//! and write; commands outside the allow-list; a grandchild ended with its server.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::peers::{env, route, route_stdio, text};
use crate::stdio_health::wait_status;

/// A directory every user may traverse (the test's own temp dirs are 0700), for the
/// children's directories.
fn traversable_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    dir
}

/// A gateway that switches children to nobody, with its children's directories under `work`.
fn sandboxed(work: &std::path::Path, extra: &str) -> String {
    format!(
        "[stdio]\nrun_as_gateway_user = false\nwork_dir = \"{}\"\n\
         max_data_bytes = 536870912\nmax_open_files = 256\nmax_processes = 512\n{extra}",
        work.display()
    )
}

/// The probe script, copied into `dir` (0711) with mode 0644: the child runs as nobody and
/// cannot read it inside a checkout under a private (0700) directory.
fn probe_script(dir: &std::path::Path) -> String {
    let copy = dir.join("sandbox_probe.py");
    std::fs::copy(
        format!("{}/sandbox_probe.py", env("MCPGW_TEST_PEERS_SRC")),
        &copy,
    )
    .unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    copy.display().to_string()
}

async fn probe(c: &mut RawClient, read: &[String], write: &[String]) -> Value {
    let reply = c.call("probe", json!({"read": read, "write": write})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    serde_json::from_str(&text(&reply.last()["result"])).expect("probe answers JSON")
}

#[tokio::test]
async fn a_stdio_server_runs_as_nobody_and_cannot_read_the_gateways_keys_or_write_outside_its_directory()
 {
    let work = traversable_dir();
    let stack = Stack::start_with(&sandboxed(work.path(), "")).await;
    // What an attacker's server wants: a key file and a config file the way a deployment
    // keeps them (0600), the gateway's snapshot (sealed credentials, every route), the gateway
    // process's environment and memory.
    let secrets = traversable_dir();
    let key_file = secrets.path().join("sealing.key");
    let config_file = secrets.path().join("gateway.toml");
    for file in [&key_file, &config_file] {
        std::fs::write(file, stack.sealing_key.as_bytes()).unwrap();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A descriptor the gateway holds without close-on-exec (as one inherited from its own
    // parent would be): the child must not get it.
    let leaked = std::fs::File::open(&key_file).unwrap();
    rustix::io::fcntl_setfd(&leaked, rustix::io::FdFlags::empty()).unwrap();
    route_stdio(
        &stack,
        "probe",
        json!({"transport": "stdio", "command": "python3", "args": [probe_script(work.path())],
               "env": {"GREETING": "sealed-hello"}}),
        &["probe"],
    )
    .await;
    let mut c = RawClient::new(
        &stack.url(),
        "probe",
        Some(stack.token("alice", &["agents"])),
    );
    c.initialize().await;
    let own = work.path().join("probe");
    let gateway_pid = std::process::id();
    let reads: Vec<String> = [
        key_file.display().to_string(),
        config_file.display().to_string(),
        stack
            .dir
            .path()
            .join("gw1/snapshot.json")
            .display()
            .to_string(),
        format!("/proc/{gateway_pid}/environ"),
        format!("/proc/{gateway_pid}/mem"),
    ]
    .into();
    let outside = [
        work.path().join("escape.txt"),
        secrets.path().join("escape.txt"),
        stack.dir.path().join("gw1/escape.txt"),
    ];
    let mut writes: Vec<String> = outside.iter().map(|p| p.display().to_string()).collect();
    writes.push(own.join("inside.txt").display().to_string());
    let p = probe(&mut c, &reads, &writes).await;

    assert_eq!(
        (&p["uid"], &p["euid"], &p["gid"]),
        (&json!(65534), &json!(65534), &json!(65534)),
        "{p}"
    );
    assert_eq!(p["groups"], json!([]), "supplementary groups dropped: {p}");
    assert!(p["id"].as_str().unwrap().starts_with("uid=65534"), "{p}");
    for path in &reads {
        assert!(
            p["read"][path]
                .as_str()
                .unwrap()
                .starts_with("PermissionError"),
            "{path} must not be readable: {p}"
        );
    }
    for path in &outside {
        let path = path.display().to_string();
        assert!(
            p["write"][&path]
                .as_str()
                .unwrap()
                .starts_with("PermissionError"),
            "{path} must not be writable: {p}"
        );
        assert!(!std::path::Path::new(&path).exists());
    }
    assert_eq!(
        p["write"][own.join("inside.txt").display().to_string()],
        "ok",
        "{p}"
    );
    // Its own directory: working directory, HOME and TMPDIR, 0700 and owned by nobody.
    assert_eq!(p["cwd"], own.display().to_string());
    let meta = std::fs::metadata(&own).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
    // Only the registered variable and what the gateway sets.
    let env = p["env"].as_object().unwrap();
    // LC_CTYPE: Python sets it itself in a C locale (PEP 538).
    let mut names: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "LC_CTYPE")
        .collect();
    names.sort();
    assert_eq!(names, ["GREETING", "HOME", "PATH", "TMPDIR"], "{p}");
    assert_eq!(env["HOME"], own.display().to_string());
    assert_eq!(env["PATH"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(env["GREETING"], "sealed-hello");
    // stdin, stdout, stderr and the probe's own listing of /proc/self/fd: nothing else.
    let fds = p["fds"].as_object().unwrap();
    let extra: Vec<_> = fds
        .iter()
        .filter(|(fd, target)| {
            !["0", "1", "2"].contains(&fd.as_str())
                && !target.as_str().unwrap().starts_with("(gone")
        })
        .collect();
    assert!(extra.is_empty(), "inherited descriptors: {extra:?}");
    // The configured limits, hard and soft; never a core dump.
    let limits = &p["limits"];
    assert_eq!(limits["RLIMIT_DATA"], json!([536870912, 536870912]), "{p}");
    assert_eq!(limits["RLIMIT_NOFILE"], json!([256, 256]), "{p}");
    assert_eq!(limits["RLIMIT_NPROC"], json!([512, 512]), "{p}");
    assert_eq!(limits["RLIMIT_CORE"], json!([0, 0]), "{p}");
    // Its own process group (it leads it), and no way to gain privileges through setuid files.
    assert_eq!(p["pgid"], p["pid"], "{p}");
    assert_eq!(p["no_new_privs"], "1", "{p}");
    drop(leaked);
}

#[tokio::test]
async fn a_stdio_command_outside_the_allow_list_is_refused_and_never_run() {
    let work = traversable_dir();
    // An allowed directory holding a symlink out of it, as a PATH or `..` trick would.
    let allowed = traversable_dir();
    std::os::unix::fs::symlink("/bin/sh", allowed.path().join("sh")).unwrap();
    let stack = Stack::start_with(&sandboxed(
        work.path(),
        &format!(
            "allowed_dirs = [\"{}\"]\nhealth_interval_seconds = 1\nrestart_min_ms = 60000\nrestart_max_ms = 60000\n",
            allowed.path().display()
        ),
    ))
    .await;
    let marker = work.path().join("ran");
    let touch = format!("/usr/bin/touch {}", marker.display());
    let dotdot = format!("{}/../../bin/sh", allowed.path().display());
    let via_link = allowed.path().join("sh").display().to_string();
    let cases = [
        (
            "sh-by-name",
            "sh",
            "not in the gateway's stdio.allowed_commands",
        ),
        (
            "sh-dotdot",
            dotdot.as_str(),
            "not in the gateway's stdio.allowed_commands",
        ),
        (
            "sh-symlink",
            via_link.as_str(),
            "not in the gateway's stdio.allowed_commands",
        ),
        ("relative", "./sh", "relative path"),
    ];
    for (path, command, _) in cases {
        route(
            &stack,
            path,
            // A registered PATH does not change where the gateway looks the command up.
            json!({"transport": "stdio", "command": command, "args": ["-c", touch],
                   "env": {"PATH": allowed.path().display().to_string()}}),
            &["x"],
        )
        .await;
    }
    for (path, command, why) in cases {
        let mut c = RawClient::new(&stack.url(), path, Some(stack.token("alice", &["agents"])));
        let reply = c.initialize_raw().await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_GATEWAY,
            "{path}: {}",
            reply.text
        );
        let message = reply.last()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(why), "{path} ({command}): {message}");
        // The health report names the refusal too.
        let h = wait_status(&stack, path, "unhealthy").await;
        assert!(
            h["reason"].as_str().is_some_and(|r| r.contains(why)),
            "{path}: {h}"
        );
    }
    assert!(!marker.exists(), "a refused command ran");
}

#[tokio::test]
async fn stopping_a_stdio_server_kills_its_whole_process_group() {
    let work = traversable_dir();
    let stack = Stack::start_with(&sandboxed(work.path(), "")).await;
    route_stdio(
        &stack,
        "spawner",
        json!({"transport": "stdio", "command": "python3", "args": [probe_script(work.path())]}),
        &["spawn"],
    )
    .await;
    let mut c = RawClient::new(
        &stack.url(),
        "spawner",
        Some(stack.token("alice", &["agents"])),
    );
    c.initialize().await;
    let grandchild: u32 = text(&c.call("spawn", json!({})).await.last()["result"])
        .parse()
        .unwrap();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    };
    assert!(alive(grandchild));
    // Disabling the server drops its route and ends the child.
    stack.toggle("spawner", false).await;
    wait_routed(&stack.gateway, "spawner", false).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(grandchild) {
        assert!(
            Instant::now() < deadline,
            "the grandchild {grandchild} outlived its server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_gateway_process_is_not_dumpable_so_a_child_of_its_user_cannot_read_it() {
    let _stack = Stack::start().await;
    assert_eq!(
        rustix::process::dumpable_behavior().unwrap(),
        rustix::process::DumpableBehavior::NotDumpable
    );
}

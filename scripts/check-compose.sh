#!/usr/bin/env bash
# Static checks of docker-compose.yml, no Docker engine needed:
#   1. it parses as YAML;
#   2. it validates against the Compose Specification JSON schema (vendored by check-jsonschema,
#      pinned in deploy/compose/check-requirements.txt, installed into $MCPGW_CACHE_DIR);
#   3. project rules: every depends_on / network_mode target exists; service_healthy targets
#      have a health check (in the file or their Dockerfile's HEALTHCHECK);
#      service_completed_successfully targets do not restart; published ports bind 127.0.0.1;
#      every ${VAR} is documented in .env.example; every MCPGW_* environment key names a real
#      setting (services/*/config/default.toml, or mcpgw-setup's MCPGW_SETUP_* flags) of the
#      service whose image it is set on;
#   4. for registry, auth-server and gateway: the binary's --check-config with the service's
#      environment (image ENV + compose environment, .env or generated placeholders), its
#      mounted config files and placeholder secret files, if a built binary is found
#      (MCPGW_BIN_DIR, else $CARGO_TARGET_DIR (default target) /debug (fresh after `make test`),
#      /release, /x86_64-unknown-linux-musl/image); skipped with a message otherwise.
# Usage: scripts/check-compose.sh [COMPOSE_FILE]   (default docker-compose.yml; exits 1 naming
# each problem)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

file=${1:-docker-compose.yml}
[[ -f $file ]] || die "$file does not exist"
req=deploy/compose/check-requirements.txt
venv=$MCPGW_CACHE_DIR/compose-check

# The pinned tools, reinstalled only when the requirements change.
if ! cmp -s "$req" "$venv/.installed-requirements" 2>/dev/null; then
  exec 9>>"$MCPGW_CACHE_DIR/.install.lock"
  flock 9
  if ! cmp -s "$req" "$venv/.installed-requirements" 2>/dev/null; then
    log "installing the compose check tools into $venv (once)"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2 ||
      die "pip could not install $req; check that PyPI is reachable and re-run"
    cp "$req" "$venv/.installed-requirements"
  fi
  exec 9>&-
fi

log "compose: schema (check-jsonschema $("$venv/bin/check-jsonschema" --version | awk '{print $NF}'), vendor.compose-spec)"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$file" >&2 ||
  die "$file does not follow the Compose Specification (see above)"

bin_dir=""
target_dir=${CARGO_TARGET_DIR:-target}
for d in ${MCPGW_BIN_DIR:-} "$target_dir/debug" "$target_dir/release" "$target_dir/x86_64-unknown-linux-musl/image"; do
  if [[ -x $d/registry && -x $d/auth-server && -x $d/gateway ]]; then bin_dir=$d; break; fi
done

log "compose: project rules"
"$venv/bin/python" - "$file" "$bin_dir" <<'PY'
import os, re, subprocess, sys, tempfile, tomllib, base64, pathlib
from ruamel.yaml import YAML

path, bin_dir = sys.argv[1], sys.argv[2]
root = pathlib.Path(".").resolve()
project = pathlib.Path(path).resolve().parent
problems = []
def bad(msg): problems.append(msg)

raw = open(path).read()
doc = YAML(typ="safe").load(raw)
services = doc.get("services") or {}

# --- references and health checks -------------------------------------------------------
def dockerfile_of(svc):
    b = svc.get("build")
    if isinstance(b, dict) and b.get("dockerfile"):
        return project / b.get("context", ".") / b["dockerfile"]
    return None
def kind_of(name, svc):
    """registry | auth-server | gateway | setup, from the Dockerfile or image name."""
    df = dockerfile_of(svc)
    if df: return df.parent.name
    m = re.search(r"/(registry|auth-server|gateway|setup):", str(svc.get("image", "")))
    return m.group(1) if m else None
def has_healthcheck(svc):
    hc = svc.get("healthcheck")
    if hc: return not hc.get("disable", False) and hc.get("test") not in (["NONE"], "NONE")
    df = dockerfile_of(svc)
    return bool(df and df.exists() and re.search(r"^HEALTHCHECK\s+(?!NONE)", df.read_text(), re.M))
for name, svc in services.items():
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list): deps = {d: {"condition": "service_started"} for d in deps}
    for dep, spec in deps.items():
        cond = (spec or {}).get("condition", "service_started")
        if dep not in services:
            bad(f"services.{name}.depends_on: no service named {dep!r}")
        elif cond == "service_healthy" and not has_healthcheck(services[dep]):
            bad(f"services.{name}.depends_on.{dep}: condition service_healthy, but {dep} has no healthcheck (in the file or its Dockerfile)")
        elif cond == "service_completed_successfully" and str(services[dep].get("restart", "no")) not in ("no", "on-failure"):
            bad(f"services.{name}.depends_on.{dep}: condition service_completed_successfully, but {dep} restarts (restart: {services[dep].get('restart')})")
    nm = str(svc.get("network_mode", ""))
    if nm.startswith("service:") and nm[8:] not in services:
        bad(f"services.{name}.network_mode: no service named {nm[8:]!r}")

# --- published ports ----------------------------------------------------------------------
for name, svc in services.items():
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            if p.get("published") is not None and p.get("host_ip") != "127.0.0.1":
                bad(f"services.{name}.ports: {p} is published on {p.get('host_ip') or 'every interface'}; set host_ip: 127.0.0.1")
        elif not str(p).startswith("127.0.0.1:"):
            bad(f"services.{name}.ports: {p!r} is published on every interface; write \"127.0.0.1:{p}\"")

# --- ${VAR} documented in .env.example ----------------------------------------------------
example = {}
for line in (project / ".env.example").read_text().splitlines():
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
    if m: example[m.group(1)] = m.group(2)
text_no_comments = "\n".join(l.split(" #")[0] if not l.lstrip().startswith("#") else "" for l in raw.splitlines())
used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text_no_comments))
used |= set(re.findall(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)", text_no_comments))
for v in sorted(used - set(example)):
    bad(f"${{{v}}} is used in {path} but not documented in .env.example")

# --- MCPGW_* keys name real settings ------------------------------------------------------
PREFIX = {"registry": "MCPGW_REGISTRY_", "auth-server": "MCPGW_AUTH_", "gateway": "MCPGW_GATEWAY_", "setup": "MCPGW_SETUP_"}
def leaves(d, pre=""):
    out = set()
    for k, v in d.items():
        p = f"{pre}{k}"
        out.add(p)  # tables too: a whole table may be set as an inline value
        if isinstance(v, dict): out |= leaves(v, p + ".")
    return out
valid = {}
for kind in ("registry", "auth-server", "gateway"):
    keys = leaves(tomllib.loads((root / f"services/{kind}/config/default.toml").read_text()))
    valid[kind] = {PREFIX[kind] + k.upper().replace(".", "__") for k in keys} | {PREFIX[kind] + "CONFIG"}
valid["setup"] = set(re.findall(r'env = "(MCPGW_SETUP_[A-Z_]+)"', (root / "services/setup/src/main.rs").read_text()))
def env_of(svc):
    e = svc.get("environment") or {}
    if isinstance(e, list):
        e = dict(x.split("=", 1) if "=" in x else (x, "") for x in e)
    return {str(k): "" if v is None else str(v) for k, v in e.items()}
for name, svc in services.items():
    kind = kind_of(name, svc)
    for k in env_of(svc):
        if not k.startswith("MCPGW_"): continue
        owner = next((kd for kd, p in PREFIX.items() if k.startswith(p)), None)
        if owner is None:
            bad(f"services.{name}.environment.{k}: no mcpgw service reads the prefix of this variable")
        elif owner != kind:
            bad(f"services.{name}.environment.{k}: a {owner} setting on a service whose image is {kind or 'not an mcpgw image'}")
        elif k not in valid[kind]:
            hint = ""
            if kind != "setup":
                key = k[len(PREFIX[kind]):].lower().replace("__", ".")
                hint = f" (key `{key}` is not in services/{kind}/config/default.toml)"
            else:
                hint = " (not an env = \"...\" flag in services/setup/src/main.rs)"
            bad(f"services.{name}.environment.{k}: not a setting{hint}")

if problems:
    for p in problems: print(f"ERROR: {p}", file=sys.stderr)
    sys.exit(1)

# --- the binaries' own --check-config -----------------------------------------------------
if not bin_dir:
    print("==> skipped the binaries' --check-config: no built registry/auth-server/gateway found "
          "(set MCPGW_BIN_DIR, or build: cargo build --release -p registry -p auth-server -p gateway)", file=sys.stderr)
    sys.exit(0)
dotenv = project / ".env"
values = dict(example)
source = ".env.example with generated placeholder secrets"
if dotenv.exists():
    for line in dotenv.read_text().splitlines():
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if m: values[m.group(1)] = m.group(2)
    source = ".env"
for k, v in list(values.items()):
    if v == "":
        values[k] = base64.b64encode(os.urandom(32)).decode() if k.endswith(("_KEY",)) else os.urandom(12).hex()
def interpolate(s):
    def sub(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        v = values.get(name, "")
        if op in (":-", "-") and not v: return arg or ""
        if op in (":?", "?") and not v: raise SystemExit(f"ERROR: {name} is required: {arg}")
        return v
    s = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", sub, s)
    return s.replace("$$", "$")
ok = True
with tempfile.TemporaryDirectory(prefix="mcpgw-compose-check.") as tmp:
    for name, svc in services.items():
        kind = kind_of(name, svc)
        if kind not in ("registry", "auth-server", "gateway"): continue
        env = {}
        df = dockerfile_of(svc)
        if df and df.exists():  # the image's ENV lines, as the container sees them
            for m in re.finditer(r"^ENV\s+((?:.*\\\n)*.*)$", df.read_text(), re.M):
                for k, v in re.findall(r"([A-Z0-9_]+)=(\S+)", m.group(1)): env[k] = v
        env.update({k: interpolate(v) for k, v in env_of(svc).items()})
        # Mounts: bind mounts map to the repository's files; named volumes to empty directories.
        mapping = []
        for vol in svc.get("volumes") or []:
            src, dst = (vol.get("source"), vol.get("target")) if isinstance(vol, dict) else (str(vol).split(":")[0], str(vol).split(":")[1])
            if src.startswith((".", "/")):
                mapping.append((dst, str((project / src).resolve())))
            else:
                d = pathlib.Path(tmp, name, src); d.mkdir(parents=True, exist_ok=True)
                mapping.append((dst, str(d)))
        mapping.sort(key=lambda m: -len(m[0]))
        def remap(v):
            for dst, src in mapping:
                if v == dst or v.startswith(dst + "/"):
                    return src + v[len(dst):]
            return v
        env = {k: remap(v) for k, v in env.items()}
        # A config file that names files in a volume: a copy with those paths mapped too.
        cfg_key = PREFIX[kind] + "CONFIG"
        if cfg_key in env and os.path.exists(env[cfg_key]):
            text = open(env[cfg_key]).read()
            for dst, src in mapping:
                text = re.sub(r'"' + re.escape(dst) + r'(/[^"]*)?"', lambda m: '"' + src + (m.group(1) or "") + '"', text)
            copy = pathlib.Path(tmp, name, "config.toml"); copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(text); env[cfg_key] = str(copy)
            files = re.findall(r'^\s*file\s*=\s*"([^"]+)"', text, re.M)
        else:
            files = []
        # Secret files another service writes at run time (mcpgw-setup): placeholders.
        files += [v for k, v in env.items() if k.endswith("__FILE") and v]
        for f in files:
            p = pathlib.Path(f)
            if str(p).startswith(tmp) and not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True); p.write_text("placeholder-secret\n")
        binary = str(pathlib.Path(bin_dir, kind).resolve())
        run = subprocess.run([binary, "--check-config"], env={"PATH": "/usr/bin:/bin", **env},
                             capture_output=True, text=True, cwd=tmp, timeout=60)
        out = (run.stdout + run.stderr).strip()
        if run.returncode == 0:
            print(f"==> {name}: {kind} --check-config ({source}): {out}", file=sys.stderr)
        else:
            print(f"ERROR: services.{name}: {kind} --check-config exited {run.returncode} with the compose environment ({source}): {out}", file=sys.stderr)
            ok = False
sys.exit(0 if ok else 1)
PY
log "compose: $file passed every check"

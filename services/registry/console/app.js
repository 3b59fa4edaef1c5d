// The mcpgw console: draws each page from the registry's REST API (the same one every other
// client uses). Rules kept throughout:
// - Data never becomes markup: elements are built with `h()` and text goes in as text nodes,
//   so a server description containing <script> is shown, never run. (The page's
//   Content-Security-Policy allows only this file's scripts as a second line of defence.)
// - Every change sends the session's CSRF token (X-CSRF-Token); the API refuses changes without it.
// - API errors are shown where they belong: next to the form field the error names, or in the
//   page's status line.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";
const CSRF = meta("mcpgw-csrf");
const GATEWAY_URL = meta("mcpgw-gateway-url").replace(/\/+$/, "");
const PERMISSIONS = new Set(meta("mcpgw-permissions").split(" ").filter(Boolean));
const may = (permission) => PERMISSIONS.has(permission);

// ---- DOM helpers ------------------------------------------------------------------------------

/** Builds an element. `attrs`: attributes, plus `on<event>` handlers and `dataset`. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const main = () => document.getElementById("main");

/** Replaces the page content; the first child should be the page's <h1>. */
function render(title, ...children) {
  document.title = `${title} · mcpgw`;
  const m = main();
  m.replaceChildren();
  append(m, children);
}

/** The status line at the top of a page (announced by screen readers). */
function statusLine() {
  return h("p", { id: "status", role: "status", "aria-live": "polite", class: "status" });
}

function say(text, kind = "info") {
  const el = document.getElementById("status");
  if (!el) return;
  el.textContent = text;
  el.dataset.kind = kind;
}

function badge(text, kind) {
  return h("span", { class: `badge badge-${kind ?? text}` }, text.replaceAll("_", " "));
}

function time(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return h("time", { datetime: ts, title: ts }, d.toLocaleString());
}

const enc = encodeURIComponent;
const serverHref = (path) => `/console/servers/${enc(path)}`;

// ---- API --------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail ?? body?.error_description ?? `the request failed (HTTP ${status})`);
    this.status = status;
    this.code = body?.code ?? body?.error ?? "error";
    this.field = body?.field ?? null;
  }
}

async function api(method, url, body, headers = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (method !== "GET") init.headers["X-CSRF-Token"] = CSRF;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, { detail: "the registry could not be reached; check your connection and retry" });
  }
  if (response.status === 401) {
    // The sign-in ended (expired or revoked): sign in again and come back here.
    location.assign(`/console/login?return_to=${enc(location.pathname + location.search)}`);
    throw new ApiError(401, { detail: "signing in again…" });
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Every page of a cursor-paged list, up to `max` items. */
async function listAll(url, max = 2000) {
  const items = [];
  let cursor = null;
  do {
    const sep = url.includes("?") ? "&" : "?";
    const page = await api("GET", cursor ? `${url}${sep}cursor=${enc(cursor)}` : url);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

/** Server events (`/api/v1/events`): health changes and changed or deleted servers, live. */
function watchEvents(handlers) {
  if (!window.EventSource) return;
  const source = new EventSource("/api/v1/events");
  for (const type of ["health", "changed", "deleted"]) {
    source.addEventListener(type, (e) => {
      try {
        handlers[type]?.(JSON.parse(e.data));
      } catch {
        /* a malformed event is ignored; the next full load corrects the page */
      }
    });
  }
  source.addEventListener("lagged", () => handlers.lagged?.());
  // The browser retries a dropped stream by itself; it gives up only when the registry refuses
  // it (e.g. 503 when every event stream slot is taken), and then the page should say so.
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) say("Live updates stopped; reload the page to resume them.", "error");
  });
  window.addEventListener("pagehide", () => source.close());
}

// ---- theme ------------------------------------------------------------------------------------

function setUpTheme() {
  const button = document.getElementById("theme-toggle");
  if (!button) return;
  const show = () => {
    const dark = document.documentElement.dataset.theme === "dark";
    button.setAttribute("aria-pressed", String(dark));
    button.title = dark ? "Dark theme (switch to light)" : "Light theme (switch to dark)";
  };
  button.addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try {
      localStorage.setItem("mcpgw-theme", next);
    } catch {
      /* storage disabled: the choice lasts for this page */
    }
    show();
  });
  show();
}

// ---- forms ------------------------------------------------------------------------------------

/** A labelled control; `control` gets an id and an error slot it describes itself with. */
function field(label, control, hint) {
  const id = control.id || `f-${control.name}`;
  control.id = id;
  const error = h("p", { class: "field-error", id: `error-${control.name}`, hidden: true });
  const hintEl = hint ? h("p", { class: "hint", id: `hint-${control.name}` }, hint) : null;
  control.setAttribute("aria-describedby", [hintEl?.id, error.id].filter(Boolean).join(" "));
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl, error);
}

function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) {
    el.hidden = true;
    el.textContent = "";
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/**
 * Shows an API error next to the control it names (via `fieldMap`), else in the status line.
 * The text is the envelope's `detail` as it is: the API already names the field in it
 * (`path: "Bad Path!" must start …`), so prefixing `field` again said it twice.
 */
function showError(form, err, fieldMap = {}) {
  const name = err.field ? fieldMap[err.field] ?? fieldMap[err.field.split(/[.[]/)[0]] ?? err.field : null;
  const control = name ? form?.querySelector(`[name="${CSS.escape(name)}"]`) : null;
  const slot = name ? form?.querySelector(`#error-${CSS.escape(name)}`) : null;
  if (control && slot) {
    slot.textContent = err.message;
    slot.hidden = false;
    control.setAttribute("aria-invalid", "true");
    control.focus();
    say("Please correct the marked field.", "error");
  } else {
    say(err.message, "error");
  }
}

function select(name, options, value) {
  return h("select", { name }, options.map((o) => h("option", { value: o, selected: o === value }, o.replaceAll("_", " "))));
}

// ---- dashboard --------------------------------------------------------------------------------

const HEALTH_ISSUES = new Set(["unhealthy", "degraded", "auth_failed"]);

function hasIssue(s) {
  return HEALTH_ISSUES.has(s.health?.status) || s.tools_status === "changed_needs_review";
}

async function dashboard() {
  const counters = h("dl", { class: "counters" });
  const filterButtons = ["All", "Enabled", "Disabled", "Issues"].map((label) =>
    h("button", { type: "button", "aria-pressed": String(label === "All"), dataset: { filter: label } }, label),
  );
  const text = h("input", { type: "search", name: "filter", placeholder: "name, path, owner, tag" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "servers" },
    h("caption", { class: "visually-hidden" }, "Registered servers"),
    h(
      "thead",
      {},
      h("tr", {}, ["Name", "Path", "Health", "Enabled", "Lifecycle", "Risk", "Owner", "Tools"].map((c) => h("th", { scope: "col" }, c))),
    ),
    tbody,
  );
  render(
    "Servers",
    h("h1", {}, "Servers"),
    statusLine(),
    h("section", { "aria-label": "Summary" }, counters),
    h(
      "div",
      { class: "toolbar" },
      h("div", { role: "group", "aria-label": "Show" }, filterButtons),
      field("Filter servers", text),
    ),
    h("div", { class: "table-wrap" }, table),
  );

  const agents = h("section", { "aria-labelledby": "h-agents", hidden: true });
  main().append(agents);
  const servers = new Map();
  let filter = "All";
  let calls24h = null;

  const drawCounters = () => {
    const list = [...servers.values()];
    const count = (p) => list.filter(p).length;
    const items = [
      ["servers", "Servers", list.length],
      ["tools", "Tools", list.reduce((n, s) => n + (s.tool_count ?? 0), 0)],
      ["healthy", "Healthy", count((s) => s.health?.status === "healthy")],
      ["unhealthy", "Unhealthy", count((s) => HEALTH_ISSUES.has(s.health?.status))],
      ["tool_calls_24h", "Tool calls (24 h)", calls24h ?? "—"],
    ];
    counters.replaceChildren(
      ...items.map(([key, label, value]) => h("div", { class: "counter" }, h("dt", {}, label), h("dd", { dataset: { counter: key } }, String(value)))),
    );
  };

  const visible = (s) => {
    if (filter === "Enabled" && !s.enabled) return false;
    if (filter === "Disabled" && s.enabled) return false;
    if (filter === "Issues" && !hasIssue(s)) return false;
    const q = text.value.trim().toLowerCase();
    if (!q) return true;
    return [s.name, s.path, s.governance?.owner_team, ...(s.tags ?? [])].some((v) => v?.toLowerCase().includes(q));
  };

  const row = (s) => {
    const toggle = h("input", {
      type: "checkbox",
      role: "switch",
      checked: s.enabled,
      "aria-label": `Enabled ${s.name}`,
      disabled: !may("servers:toggle") && true,
      onchange: async (e) => {
        const wanted = e.target.checked;
        e.target.disabled = true;
        try {
          const updated = await api("POST", `/api/v1/servers/${enc(s.path)}/toggle`, { enabled: wanted });
          servers.set(s.path, updated);
          say(`${s.name} is now ${wanted ? "enabled" : "disabled"}.`);
          redraw();
        } catch (err) {
          e.target.checked = !wanted;
          e.target.disabled = false;
          say(`Could not change ${s.name}: ${err.message}`, "error");
        }
      },
    });
    return h(
      "tr",
      { dataset: { path: s.path } },
      h("td", {}, h("a", { href: serverHref(s.path) }, s.name)),
      h("td", {}, h("code", {}, `/${s.path}`)),
      h("td", {}, h("span", { class: `health health-${s.health?.status ?? "unknown"}`, "data-health": "" }, s.health?.status ?? "unknown")),
      h("td", {}, toggle),
      h("td", {}, badge(s.lifecycle)),
      h("td", {}, badge(s.governance?.risk_level ?? "medium", `risk-${s.governance?.risk_level}`)),
      h("td", {}, s.governance?.owner_team ?? ""),
      h("td", { class: "num" }, String(s.tool_count ?? 0), s.tools_status === "changed_needs_review" ? h("span", { class: "flag", title: "Tool changes need review" }, " ⚑") : null),
    );
  };

  const redraw = () => {
    const list = [...servers.values()].sort((a, b) => a.path.localeCompare(b.path));
    const shown = list.filter(visible);
    tbody.replaceChildren(
      ...(shown.length ? shown.map(row) : [h("tr", {}, h("td", { colspan: 8, class: "empty" }, list.length ? "No server matches the filter." : "No servers registered yet."))]),
    );
    drawCounters();
  };

  for (const b of filterButtons) {
    b.addEventListener("click", () => {
      filter = b.dataset.filter;
      for (const other of filterButtons) other.setAttribute("aria-pressed", String(other === b));
      redraw();
    });
  }
  text.addEventListener("input", redraw);

  try {
    for (const s of await listAll("/api/v1/servers?limit=200")) servers.set(s.path, s);
    redraw();
  } catch (err) {
    say(`Could not load servers: ${err.message}`, "error");
    return;
  }
  listAll("/api/v1/agents?limit=200")
    .then((list) => drawAgents(agents, list))
    .catch(() => {
      /* agents are optional; the servers are what this page is for */
    });
  if (may("audit:read")) {
    const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
    api("GET", `/api/v1/audit/count?action=mcp.tool_call&since=${enc(since)}`)
      .then((r) => {
        calls24h = r.count;
        drawCounters();
      })
      .catch(() => {});
  }
  const refetch = async (path) => {
    try {
      servers.set(path, await api("GET", `/api/v1/servers/${enc(path)}`));
      redraw();
    } catch {
      /* gone or no longer readable */
    }
  };
  watchEvents({
    health: (e) => {
      const s = servers.get(e.path);
      if (!s) return;
      s.health = { ...s.health, status: e.status, reason: e.reason };
      redraw();
    },
    changed: (e) => refetch(e.path),
    deleted: (e) => {
      servers.delete(e.path);
      redraw();
    },
    lagged: () => location.reload(),
  });
}

/** The registered A2A agents, read-only, below the servers (hidden when there are none). */
function drawAgents(section, list) {
  if (!list.length) return;
  section.hidden = false;
  section.replaceChildren(
    h("h2", { id: "h-agents" }, "Agents"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["Name", "Path", "Health", "Enabled", "Lifecycle", "Owner", "Skills"].map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          list.map((a) =>
            h(
              "tr",
              { dataset: { agent: a.path } },
              h("td", {}, a.card?.name ?? a.path, a.card?.description ? h("p", { class: "muted" }, a.card.description) : null),
              h("td", {}, h("code", {}, `/${a.path}`)),
              h("td", {}, h("span", { class: `health health-${a.health?.status ?? "unknown"}` }, a.health?.status ?? "unknown")),
              h("td", {}, a.enabled ? "yes" : "no"),
              h("td", {}, badge(a.lifecycle)),
              h("td", {}, a.governance?.owner_team ?? ""),
              h("td", { class: "num" }, String(a.card?.skills?.length ?? 0)),
            ),
          ),
        ),
      ),
    ),
  );
}

// ---- server detail ----------------------------------------------------------------------------

// Which permission each lifecycle transition needs (docs/API.md, "Lifecycle"); the registry
// checks again, this only hides buttons the user cannot use.
const TRANSITION_PERMISSION = {
  "draft>submitted": "lifecycle:submit",
  "submitted>draft": "lifecycle:submit",
  "submitted>security_review": "lifecycle:review",
  "security_review>approved_dev": "lifecycle:review",
  "security_review>draft": "lifecycle:review",
  "approved_dev>approved_prod": "lifecycle:approve_prod",
  "approved_dev>deprecated": "lifecycle:deprecate",
  "approved_prod>deprecated": "lifecycle:deprecate",
  "deprecated>retired": "lifecycle:retire",
};

const TRANSITION_LABEL = {
  submitted: "Submit for review",
  draft: "Back to draft",
  security_review: "Start security review",
  approved_dev: "Approve for dev",
  approved_prod: "Approve for production",
  deprecated: "Deprecate",
  retired: "Retire",
};

function connectSnippets(server) {
  const url = `${GATEWAY_URL}/${server.path}/mcp`;
  const name = server.path;
  const snippets = [
    ["Claude Code", `claude mcp add --transport http ${name} ${url} \\\n  --header "Authorization: Bearer $MCPGW_TOKEN"`],
    ["Cursor (.cursor/mcp.json)", JSON.stringify({ mcpServers: { [name]: { url, headers: { Authorization: "Bearer ${env:MCPGW_TOKEN}" } } } }, null, 2)],
    ["VS Code (.vscode/mcp.json)", JSON.stringify({ servers: { [name]: { type: "http", url, headers: { Authorization: "Bearer ${input:mcpgw-token}" } } }, inputs: [{ type: "promptString", id: "mcpgw-token", description: "mcpgw access token", password: true }] }, null, 2)],
    ["Any MCP client", `URL: ${url}\nTransport: Streamable HTTP\nHeader: Authorization: Bearer <token from the Tokens page>`],
  ];
  return snippets.map(([title, text]) =>
    h(
      "div",
      { class: "snippet" },
      h("h3", {}, title),
      h("pre", {}, h("code", {}, text)),
      h(
        "button",
        {
          type: "button",
          class: "small",
          onclick: async (e) => {
            try {
              await navigator.clipboard.writeText(text);
              e.target.textContent = "Copied";
            } catch {
              e.target.textContent = "Select the text to copy";
            }
          },
        },
        `Copy ${title.split(" (")[0]} configuration`,
      ),
    ),
  );
}

function auditTable(records) {
  if (!records.length) return h("p", { class: "muted" }, "No records.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, ["When", "Who", "Action", "Resource", "Details"].map((c) => h("th", { scope: "col" }, c)))),
      h(
        "tbody",
        {},
        records.map((r) =>
          h(
            "tr",
            {},
            h("td", {}, time(r.at)),
            h("td", {}, r.actor),
            h("td", {}, h("code", {}, r.action), r.details?.decision ? [" ", badge(r.details.decision)] : null),
            h("td", {}, r.resource_type === "server" ? h("a", { href: serverHref(r.resource_id) }, r.resource_id) : `${r.resource_type} ${r.resource_id}`),
            h("td", {}, h("details", {}, h("summary", {}, summarize(r)), h("pre", {}, JSON.stringify(r.details, null, 2)))),
          ),
        ),
      ),
    ),
  );
}

function summarize(r) {
  const d = r.details ?? {};
  if (d.tool) return `${d.method ?? ""} ${d.tool}`.trim();
  if (d.from && d.to) return `${d.from} → ${d.to}`;
  if (d.reason) return String(d.reason).slice(0, 80);
  return "details";
}

async function serverPage(path) {
  let server;
  try {
    server = await api("GET", `/api/v1/servers/${enc(path)}`);
  } catch (err) {
    render("Server", h("h1", {}, "Server not found"), h("p", { role: "alert" }, err.message), h("p", {}, h("a", { href: "/console/" }, "Back to the servers")));
    return;
  }
  const healthEl = h("span", { "data-health": "", class: "health" });
  const lifecycleEl = h("span", { "data-lifecycle": "" });
  const showHealth = (status, reason) => {
    healthEl.textContent = status;
    healthEl.className = `health health-${status}`;
    healthEl.title = reason ?? "";
  };
  const reason = h("input", { name: "reason", type: "text", maxlength: 1000 });
  const transitions = h("div", { class: "actions" });
  const history = h("div");
  const toolChanges = h("div");
  const healthHistory = h("div");
  const audit = h("div");
  const meta = h("dl", { class: "meta" });

  const drawMeta = () => {
    const g = server.governance ?? {};
    const rows = [
      ["Path", h("code", {}, `/${server.path}`)],
      ["Description", server.description || "—"],
      ["Endpoint", `${server.endpoint?.transport ?? ""} ${server.endpoint?.url ?? server.endpoint?.command ?? ""}`],
      ["Owner team", g.owner_team],
      ["Technical owner", g.technical_owner ?? "—"],
      ["Environment", g.environment],
      ["Risk", badge(g.risk_level ?? "medium", `risk-${g.risk_level}`)],
      ["Data classification", g.data_classification],
      ["Tags", (server.tags ?? []).join(", ") || "—"],
      ["Enabled", server.enabled ? "yes" : "no"],
      ["Routable", server.routable ? "yes (gateways route it)" : "no"],
      ["Updated", [time(server.updated_at), ` by ${server.updated_by}`]],
      ["Revision", String(server.revision)],
    ];
    meta.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    showHealth(server.health?.status ?? "unknown", server.health?.reason);
    lifecycleEl.replaceChildren(badge(server.lifecycle));
  };

  const drawLifecycle = () => {
    const allowed = (server.next_lifecycle_states ?? []).filter((to) => may(TRANSITION_PERMISSION[`${server.lifecycle}>${to}`]));
    transitions.replaceChildren(
      ...(allowed.length
        ? allowed.map((to) =>
            h(
              "button",
              {
                type: "button",
                dataset: { transition: to },
                onclick: async () => {
                  try {
                    server = await api("POST", `/api/v1/servers/${enc(path)}/lifecycle`, { to, reason: reason.value }, { "If-Match": `"${server.revision}"` });
                    reason.value = "";
                    say(`Moved to ${to.replaceAll("_", " ")}.`);
                    drawAll();
                    loadAudit();
                  } catch (err) {
                    showError(main(), err, { reason: "reason", to: "reason" });
                  }
                },
              },
              TRANSITION_LABEL[to] ?? to,
            ),
          )
        : [h("p", { class: "muted" }, "No transition you may make from here.")]),
    );
    const events = server.lifecycle_history ?? [];
    history.replaceChildren(
      events.length
        ? h(
            "ol",
            { class: "timeline" },
            events.map((e) => h("li", {}, time(e.at), " ", badge(e.from), " → ", badge(e.to), ` by ${e.actor}: `, h("q", {}, e.reason))),
          )
        : h("p", { class: "muted" }, "No transitions yet."),
    );
  };

  const drawToolChanges = () => {
    const changes = server.tool_changes ?? [];
    if (!changes.length) {
      toolChanges.replaceChildren(h("p", { class: "muted" }, `Tools: ${server.tools_status.replaceAll("_", " ")}. Nothing needs review.`));
      return;
    }
    const hashes = Object.fromEntries(changes.map((c) => [c.name, c.current_hash ?? null]));
    const canDecide = may("tools:approve");
    toolChanges.replaceChildren(
      h("p", {}, badge("needs review", "warn"), " Gateways withhold these until they are approved."),
      h("ul", {}, changes.map((c) => h("li", {}, h("code", {}, c.name), ` ${c.change}`, c.approved_hash ? ` (approved ${c.approved_hash.slice(0, 12)}…)` : "", c.current_hash ? ` (now ${c.current_hash.slice(0, 12)}…)` : ""))),
      canDecide
        ? h(
            "div",
            { class: "actions" },
            h(
              "button",
              {
                type: "button",
                onclick: async () => {
                  try {
                    server = await api("POST", `/api/v1/servers/${enc(path)}/tools/approve`, { tools: hashes, reason: reason.value || undefined }, { "If-Match": `"${server.revision}"` });
                    say("Tool changes approved.");
                    drawAll();
                    loadAudit();
                  } catch (err) {
                    showError(main(), err, { reason: "reason" });
                  }
                },
              },
              "Approve changes",
            ),
            h(
              "button",
              {
                type: "button",
                class: "danger",
                onclick: async () => {
                  try {
                    await api("POST", `/api/v1/servers/${enc(path)}/tools/reject`, { tools: hashes, reason: reason.value });
                    say("Rejection recorded; the changes stay withheld.");
                    loadAudit();
                  } catch (err) {
                    showError(main(), err, { reason: "reason" });
                  }
                },
              },
              "Reject changes",
            ),
          )
        : null,
    );
  };

  const tools = h("div");
  const drawTools = () => {
    const list = server.tools ?? [];
    tools.replaceChildren(
      list.length
        ? h(
            "ul",
            { class: "tools" },
            list.map((t) =>
              h(
                "li",
                {},
                h("details", {}, h("summary", {}, h("code", {}, t.name), t.description ? ` — ${t.description}` : ""), h("pre", {}, JSON.stringify(t.inputSchema ?? t.input_schema ?? t, null, 2))),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No tools discovered yet."),
    );
  };

  const drawAll = () => {
    drawMeta();
    drawLifecycle();
    drawToolChanges();
    drawTools();
  };

  const loadHealth = async () => {
    try {
      const health = await api("GET", `/api/v1/servers/${enc(path)}/health`);
      const checks = health.health?.history ?? [];
      healthHistory.replaceChildren(
        checks.length
          ? h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                {},
                h("thead", {}, h("tr", {}, ["When", "Status", "Latency", "Why", "Trigger"].map((c) => h("th", { scope: "col" }, c)))),
                h("tbody", {}, checks.map((c) => h("tr", {}, h("td", {}, time(c.at)), h("td", {}, h("span", { class: `health health-${c.status}` }, c.status)), h("td", { class: "num" }, `${c.latency_ms} ms`), h("td", {}, c.reason ?? ""), h("td", {}, c.trigger)))),
              ),
            )
          : h("p", { class: "muted" }, "No checks yet."),
      );
    } catch (err) {
      healthHistory.replaceChildren(h("p", { class: "muted" }, err.message));
    }
  };

  const loadAudit = async () => {
    if (!may("audit:read")) {
      audit.replaceChildren(h("p", { class: "muted" }, "Reading the audit trail needs the audit:read permission."));
      return;
    }
    try {
      const page = await api("GET", `/api/v1/audit?resource_id=${enc(path)}&limit=50`);
      audit.replaceChildren(auditTable(page.items));
    } catch (err) {
      audit.replaceChildren(h("p", { class: "muted" }, err.message));
    }
  };

  const section = (title, ...body) => h("section", { "aria-labelledby": `h-${title.replace(/\W+/g, "-")}` }, h("h2", { id: `h-${title.replace(/\W+/g, "-")}` }, title), body);
  render(
    server.name,
    h("h1", {}, server.name),
    h("p", { class: "subtitle" }, healthEl, " ", lifecycleEl, may("servers:update") ? [" ", h("a", { href: `${serverHref(path)}/edit` }, "Edit")] : null),
    statusLine(),
    meta,
    section("Tools", tools),
    section("Health", healthHistory, h("button", { type: "button", class: "small", onclick: async () => {
      try {
        await api("POST", `/api/v1/servers/${enc(path)}/health`);
        say("Checked now.");
        loadHealth();
      } catch (err) {
        say(err.message, "error");
      }
    } }, "Check now")),
    section("Lifecycle", field("Reason", reason, "Kept in the lifecycle history and the audit log."), transitions, history),
    section("Tool changes", toolChanges),
    section("Audit trail", audit),
    section("Connect", h("p", {}, "Point your MCP client at the gateway with a token from the ", h("a", { href: "/console/tokens" }, "Tokens"), " page."), connectSnippets(server)),
  );
  drawAll();
  loadHealth();
  loadAudit();
  watchEvents({
    health: (e) => {
      if (e.path !== path) return;
      server.health = { ...server.health, status: e.status, reason: e.reason };
      showHealth(e.status, e.reason);
      loadHealth();
    },
    changed: async (e) => {
      if (e.path !== path || e.revision === server.revision) return;
      try {
        server = await api("GET", `/api/v1/servers/${enc(path)}`);
        drawAll();
      } catch {
        /* deleted meanwhile */
      }
    },
    deleted: (e) => {
      if (e.path === path) say("This server was deleted.", "error");
    },
  });
}

// ---- register / edit --------------------------------------------------------------------------

// API field → form control, for showing errors next to the right control.
const SERVER_FIELDS = {
  path: "path",
  name: "name",
  description: "description",
  tags: "tags",
  endpoint: "url",
  "endpoint.url": "url",
  "endpoint.transport": "transport",
  "governance.owner_team": "owner_team",
  "governance.technical_owner": "technical_owner",
  "governance.risk_level": "risk_level",
  "governance.environment": "environment",
  "governance.data_classification": "data_classification",
};

async function serverForm(path) {
  let existing = null;
  if (path) {
    try {
      existing = await api("GET", `/api/v1/servers/${enc(path)}`);
    } catch (err) {
      render("Edit server", h("h1", {}, "Server not found"), h("p", { role: "alert" }, err.message));
      return;
    }
  }
  const g = existing?.governance ?? {};
  const controls = {
    path: h("input", { name: "path", required: true, value: existing?.path ?? "", readonly: Boolean(existing), autocomplete: "off", spellcheck: "false" }),
    name: h("input", { name: "name", required: true, value: existing?.name ?? "" }),
    description: h("textarea", { name: "description", rows: 3 }),
    transport: select("transport", ["streamable-http", "sse"], existing?.endpoint?.transport ?? "streamable-http"),
    url: h("input", { name: "url", type: "url", required: true, value: existing?.endpoint?.url ?? "", placeholder: "https://mcp.example.com/mcp" }),
    owner_team: h("input", { name: "owner_team", required: true, value: g.owner_team ?? "" }),
    technical_owner: h("input", { name: "technical_owner", value: g.technical_owner ?? "", type: "text" }),
    environment: select("environment", ["dev", "staging", "prod"], g.environment ?? "dev"),
    risk_level: select("risk_level", ["low", "medium", "high", "critical"], g.risk_level ?? "medium"),
    data_classification: select("data_classification", ["public", "internal", "confidential", "restricted"], g.data_classification ?? "internal"),
    tags: h("input", { name: "tags", value: (existing?.tags ?? []).join(", ") }),
  };
  controls.description.value = existing?.description ?? "";
  const form = h(
    "form",
    { class: "stack", novalidate: true },
    field("Path", controls.path, "Lowercase letters, digits and '-'; the gateway serves it at /<path>/mcp."),
    field("Name", controls.name),
    field("Description", controls.description),
    field("Transport", controls.transport),
    field("URL", controls.url, "The server's MCP endpoint; it must pass the registry's egress policy."),
    field("Owner", controls.owner_team, "The owning team."),
    field("Technical owner", controls.technical_owner),
    field("Environment", controls.environment),
    field("Risk", controls.risk_level),
    field("Data classification", controls.data_classification),
    field("Tags", controls.tags, "Comma-separated."),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, existing ? "Save" : "Register"), existing ? h("a", { href: serverHref(existing.path) }, "Cancel") : null),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const value = (name) => controls[name].value.trim();
    // An emptied optional field is sent as null: in a merge patch that removes it (leaving it
    // out would keep the old value).
    const optional = (name) => value(name) || null;
    const spec = {
      path: value("path"),
      name: value("name"),
      description: value("description"),
      tags: value("tags").split(",").map((t) => t.trim()).filter(Boolean),
      endpoint: { transport: value("transport"), url: value("url") },
      governance: {
        ...(existing?.governance ?? {}),
        owner_team: value("owner_team"),
        technical_owner: optional("technical_owner"),
        environment: value("environment"),
        risk_level: value("risk_level"),
        data_classification: value("data_classification"),
      },
    };
    if (existing) {
      // A PATCH keeps what this form does not show (credentials, gateway settings).
      delete spec.path;
    }
    try {
      const saved = existing
        ? await api("PATCH", `/api/v1/servers/${enc(existing.path)}`, spec, { "If-Match": `"${existing.revision}"`, "Content-Type": "application/merge-patch+json" })
        : await api("POST", "/api/v1/servers", spec);
      location.assign(serverHref(saved.path));
    } catch (err) {
      showError(form, err, SERVER_FIELDS);
    }
  });
  render(existing ? `Edit ${existing.name}` : "Register a server", h("h1", {}, existing ? `Edit ${existing.name}` : "Register a server"), statusLine(), form);
}

// ---- search -----------------------------------------------------------------------------------

async function searchPage() {
  const params = new URLSearchParams(location.search);
  const q = h("input", { type: "search", name: "q", value: params.get("q") ?? "", required: true });
  const results = h("ol", { class: "results" });
  const form = h("form", { role: "search", class: "inline" }, field("Search", q, "Servers, tools and agents, best match first."), h("button", { type: "submit", class: "primary" }, "Search"));
  const run = async () => {
    const query = q.value.trim();
    if (!query) return;
    history.replaceState(null, "", `?q=${enc(query)}`);
    say("Searching…");
    try {
      const answer = await api("POST", "/api/v1/search", { query, limit: 30 });
      const items = answer.results;
      results.replaceChildren(
        ...items.map((r) =>
          h(
            "li",
            { dataset: { kind: r.kind } },
            badge(r.kind),
            " ",
            r.kind === "agent" ? h("strong", {}, r.name) : h("a", { href: serverHref(r.server) }, r.name),
            r.kind === "tool" ? h("span", { class: "muted" }, ` on ${r.server_name}`) : null,
            r.description ? h("p", {}, r.description) : null,
            typeof r.score === "number" ? h("span", { class: "muted score" }, `score ${r.score.toFixed(3)}`) : null,
          ),
        ),
      );
      say(items.length ? `${items.length} results for “${query}”.` : `Nothing matches “${query}”.`);
    } catch (err) {
      showError(form, err, { query: "q" });
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    clearErrors(form);
    run();
  });
  render("Search", h("h1", {}, "Search"), statusLine(), form, results);
  if (q.value) run();
}

// ---- audit log --------------------------------------------------------------------------------

async function auditPage() {
  const params = new URLSearchParams(location.search);
  const input = (name, type = "text") => h("input", { name, type, value: params.get(name) ?? "" });
  const controls = {
    actor: input("actor"),
    resource_id: input("resource_id"),
    tool: input("tool"),
    decision: h("select", { name: "decision" }, h("option", { value: "" }, "any"), h("option", { value: "allowed", selected: params.get("decision") === "allowed" }, "allowed"), h("option", { value: "denied", selected: params.get("decision") === "denied" }, "denied")),
    since: input("since", "datetime-local"),
    until: input("until", "datetime-local"),
  };
  const csv = h("a", { download: "", class: "button" }, "Export CSV");
  const jsonl = h("a", { download: "", class: "button" }, "Export JSONL");
  const rows = h("div");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const form = h(
    "form",
    { class: "filters" },
    field("User", controls.actor, "The subject, e.g. jwt:… or api_key:…"),
    field("Server", controls.resource_id),
    field("Tool", controls.tool),
    field("Decision", controls.decision),
    field("From", controls.since),
    field("To", controls.until),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Apply"), csv, jsonl),
  );
  const query = () => {
    const q = new URLSearchParams();
    for (const [name, el] of Object.entries(controls)) {
      const v = el.value.trim();
      if (!v) continue;
      q.set(name, el.type === "datetime-local" ? new Date(v).toISOString() : v);
    }
    return q;
  };
  let records = [];
  const load = async (cursor) => {
    const q = query();
    csv.href = `/api/v1/audit/export?format=csv&${q}`;
    jsonl.href = `/api/v1/audit/export?format=jsonl&${q}`;
    q.set("limit", "100");
    if (cursor) q.set("cursor", cursor);
    try {
      const page = await api("GET", `/api/v1/audit?${q}`);
      records = cursor ? records.concat(page.items) : page.items;
      rows.replaceChildren(auditTable(records));
      more.hidden = !page.next_cursor;
      more.onclick = () => load(page.next_cursor);
      say(`${records.length} records${page.next_cursor ? " (more available)" : ""}.`);
    } catch (err) {
      showError(form, err, { actor: "actor", resource_id: "resource_id", tool: "tool", decision: "decision", since: "since", until: "until" });
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    clearErrors(form);
    const shown = new URLSearchParams();
    for (const [name, el] of Object.entries(controls)) if (el.value.trim()) shown.set(name, el.value.trim());
    history.replaceState(null, "", `?${shown}`);
    load();
  });
  render("Audit log", h("h1", {}, "Audit log"), statusLine(), form, rows, more);
  load();
}

// ---- tokens -----------------------------------------------------------------------------------

async function tokensPage() {
  const statusEl = statusLine();
  render("Tokens", h("h1", {}, "Tokens"), statusEl, h("p", {}, "Loading…"));
  let me;
  try {
    me = await api("GET", "/console/api/identity");
  } catch (err) {
    say(`The auth-server could not tell which scopes you may grant: ${err.message}`, "error");
    return;
  }
  const description = h("input", { name: "description", maxlength: 200, placeholder: "e.g. CI agent for the docs repo" });
  // One unit (minutes) and one limit: the auth-server's tokens.max_ttl_seconds, as /me says it.
  const maxMinutes = Math.max(1, Math.floor((me.token_max_ttl_seconds ?? 3600) / 60));
  const lifetimeRule = `1 to ${maxMinutes} minutes.`;
  const ttl = h("input", { name: "ttl_minutes", type: "number", min: 1, max: maxMinutes, step: 1, value: Math.min(60, maxMinutes) });
  // Only scopes a scope document grants: another held scope would open nothing at the gateway.
  const grantable = me.grantable_scopes ?? me.scopes ?? [];
  const unused = (me.scopes ?? []).filter((s) => !grantable.includes(s));
  const scopeBoxes = grantable.map((s) => h("label", { class: "check" }, h("input", { type: "checkbox", name: s, value: s }), ` ${s}`));
  const unusedNote = unused.length
    ? h("p", { class: "hint", id: "scopes-unused" }, `Not offered, because no scope document of this registry grants anything for them: ${unused.join(", ")}.`)
    : null;
  const minted = h("output", { id: "minted-token", for: "f-description", class: "minted" });
  const list = h("div");
  const form = h(
    "form",
    { class: "stack" },
    field("Description", description, "Shown in your token list."),
    h("fieldset", { class: "scopes" }, h("legend", {}, "Scopes (a subset of yours)"), scopeBoxes.length ? scopeBoxes : h("p", { class: "muted" }, "You hold no scopes to grant."), unusedNote, h("p", { class: "field-error", id: "error-scopes", hidden: true })),
    field("Lifetime (minutes)", ttl, lifetimeRule),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Mint token")),
  );
  const load = async () => {
    try {
      const answer = await api("GET", "/console/api/tokens");
      const items = answer.items ?? [];
      list.replaceChildren(
        items.length
          ? h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                {},
                h("thead", {}, h("tr", {}, ["Description", "Scopes", "Issued", "Expires", "State", ""].map((c) => h("th", { scope: "col" }, c)))),
                h(
                  "tbody",
                  {},
                  items.map((t) => {
                    const expired = new Date(t.expires_at) < new Date();
                    // A client's sign-in with a refresh token is one row (its newest access
                    // token): past that token's expiry the client may still refresh, so it
                    // stays revocable (revoking it ends the sign-in).
                    const state = t.revoked_at ? "revoked" : !expired ? "active" : t.refresh_family ? "refreshable" : "expired";
                    return h(
                      "tr",
                      { dataset: { jti: t.jti } },
                      h("td", {}, t.description ?? (t.client_id ? `${t.client_id} sign-in` : "—")),
                      h("td", {}, (t.scopes ?? []).join(" ")),
                      h("td", {}, time(t.issued_at)),
                      h("td", {}, time(t.expires_at)),
                      h("td", {}, badge(state, state === "refreshable" ? "active" : undefined)),
                      h(
                        "td",
                        {},
                        state === "active" || state === "refreshable"
                          ? h(
                              "button",
                              {
                                type: "button",
                                class: "danger small",
                                "aria-label": `Revoke ${t.description ?? t.jti}`,
                                onclick: async () => {
                                  try {
                                    await api("DELETE", `/console/api/tokens/${enc(t.jti)}`);
                                    say(t.refresh_family ? "Signed out: the client's sign-in and its tokens are revoked; gateways refuse them within their revocation poll." : "Token revoked; gateways refuse it within their revocation poll.");
                                    load();
                                  } catch (err) {
                                    say(err.message, "error");
                                  }
                                },
                              },
                              "Revoke",
                            )
                          : null,
                      ),
                    );
                  }),
                ),
              ),
            )
          : h("p", { class: "muted" }, "You have no tokens."),
      );
    } catch (err) {
      say(err.message, "error");
    }
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const scopes = scopeBoxes.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    const minutes = Number(ttl.value);
    try {
      const answer = await api("POST", "/console/api/tokens", {
        scopes,
        ttl_seconds: Number.isFinite(minutes) ? Math.round(minutes * 60) : undefined,
        description: description.value.trim() || undefined,
      });
      minted.replaceChildren(
        h("p", {}, h("strong", {}, "Copy this token now: it is shown once."), ` It expires in ${Math.round(answer.expires_in / 60)} minutes.`),
        h("pre", {}, h("code", { class: "token" }, answer.access_token)),
        h("button", { type: "button", class: "small", onclick: () => navigator.clipboard?.writeText(answer.access_token).catch(() => {}) }, "Copy token"),
      );
      say("Token minted.");
      load();
    } catch (err) {
      // The API counts seconds; the form asks in minutes, so its error does too.
      if (err.field === "ttl_seconds") err.message = `Lifetime: must be ${lifetimeRule}`;
      showError(form, err, { ttl_seconds: "ttl_minutes", description: "description", scopes: "scopes" });
      if (err.field?.startsWith("scopes")) {
        const slot = form.querySelector("#error-scopes");
        slot.textContent = err.message;
        slot.hidden = false;
      }
    }
  });
  main().replaceChildren(
    h("h1", {}, "Tokens"),
    statusEl,
    h("p", {}, `Signed in as ${me.username}. Tokens you mint carry a subset of your scopes and act for you at the gateway.`),
    h("section", { "aria-labelledby": "h-mint" }, h("h2", { id: "h-mint" }, "Mint a token"), form, minted),
    h("section", { "aria-labelledby": "h-yours" }, h("h2", { id: "h-yours" }, "Your tokens"), list),
  );
  load();
}

// ---- policies ---------------------------------------------------------------------------------

async function policiesPage() {
  let snapshot;
  try {
    snapshot = await api("GET", "/api/v1/scopes");
  } catch (err) {
    render("Policies", h("h1", {}, "Policies"), h("p", { role: "alert" }, err.message));
    return;
  }
  const editor = h("textarea", { name: "document", rows: 16, spellcheck: "false", class: "code" });
  const name = h("input", { name: "name", required: true, autocomplete: "off" });
  const docs = h("div");
  const canWrite = may("policies:write");
  const drawList = () => {
    docs.replaceChildren(
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("caption", {}, `Policy version ${snapshot.version}`),
          h("thead", {}, h("tr", {}, ["Scope", "Groups mapped to it", "Server rules", "UI permissions", ""].map((c) => h("th", { scope: "col" }, c)))),
          h(
            "tbody",
            {},
            snapshot.documents.map((d) =>
              h(
                "tr",
                {},
                h("td", {}, h("code", {}, d.name)),
                h("td", {}, (d.group_mappings ?? []).join(", ") || "—"),
                h("td", { class: "num" }, String((d.server_access ?? []).length)),
                h("td", {}, Object.keys(d.ui_permissions ?? {}).join(", ") || "—"),
                h("td", {}, h("button", { type: "button", class: "small", onclick: () => edit(d) }, `Edit ${d.name}`)),
              ),
            ),
          ),
        ),
      ),
    );
  };
  const edit = (d) => {
    name.value = d.name;
    editor.value = JSON.stringify(d, null, 2);
    editor.focus();
  };
  const form = h(
    "form",
    { class: "stack" },
    field("Scope name", name),
    field("Scope document (JSON)", editor, "name, group_mappings, server_access, ui_permissions (docs/API.md)."),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", disabled: !canWrite }, "Save"), canWrite ? null : h("span", { class: "muted" }, "Saving needs policies:write.")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    let doc;
    try {
      doc = JSON.parse(editor.value);
    } catch (err) {
      showError(form, { field: "document", message: `is not valid JSON: ${err.message}` }, { document: "document" });
      return;
    }
    try {
      await api("PUT", `/api/v1/scopes/${enc(name.value.trim())}`, doc);
      snapshot = await api("GET", "/api/v1/scopes");
      drawList();
      say(`Saved ${name.value.trim()}; gateways apply it at their next snapshot.`);
    } catch (err) {
      showError(form, err, { name: "name" });
      if (err.field && err.field !== "name") {
        const slot = form.querySelector("#error-document");
        slot.textContent = err.message;
        slot.hidden = false;
      }
    }
  });
  const check = {
    groups: h("input", { name: "groups", placeholder: "comma-separated" }),
    scopes: h("input", { name: "scopes", placeholder: "comma-separated" }),
    server: h("input", { name: "server", required: true }),
    tool: h("input", { name: "tool" }),
  };
  const result = h("p", { id: "check-result", role: "status", "aria-live": "polite" });
  const list = (v) => v.split(",").map((x) => x.trim()).filter(Boolean);
  const checkForm = h(
    "form",
    { class: "filters" },
    field("Groups", check.groups),
    field("Scopes", check.scopes),
    field("Server", check.server),
    field("Tool", check.tool),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Check")),
  );
  checkForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(checkForm);
    const tool = check.tool.value.trim();
    try {
      const answer = await api("POST", "/api/v1/policy/check", {
        groups: list(check.groups.value),
        scopes: list(check.scopes.value),
        server: check.server.value.trim(),
        method: tool ? "tools/call" : "tools/list",
        tool: tool || undefined,
      });
      result.dataset.allowed = String(answer.allowed);
      result.replaceChildren(h("strong", {}, answer.allowed ? "Allowed" : "Denied"), `: ${answer.explanation} (policy version ${answer.policy_version})`);
    } catch (err) {
      showError(checkForm, err, { groups: "groups", scopes: "scopes", server: "server", tool: "tool" });
    }
  });
  render(
    "Policies",
    h("h1", {}, "Policies"),
    statusLine(),
    h("section", { "aria-labelledby": "h-docs" }, h("h2", { id: "h-docs" }, "Scope documents"), docs),
    h("section", { "aria-labelledby": "h-edit" }, h("h2", { id: "h-edit" }, "Edit a scope document"), form),
    h("section", { "aria-labelledby": "h-check" }, h("h2", { id: "h-check" }, "Can X call tool Y on server Z?"), checkForm, result),
  );
  drawList();
}

// ---- routing ----------------------------------------------------------------------------------

function route() {
  const path = location.pathname.replace(/\/+$/, "/");
  const server = path.match(/^\/console\/servers\/([^/]+)\/?(edit)?\/?$/);
  if (path === "/console/") return dashboard();
  if (server) return server[2] ? serverForm(decodeURIComponent(server[1])) : serverPage(decodeURIComponent(server[1]));
  if (path === "/console/register" || path === "/console/register/") return serverForm(null);
  if (path.startsWith("/console/search")) return searchPage();
  if (path.startsWith("/console/audit")) return auditPage();
  if (path.startsWith("/console/tokens")) return tokensPage();
  if (path.startsWith("/console/policies")) return policiesPage();
  render("Not found", h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "/console/" }, "Go to the servers")));
}

setUpTheme();
Promise.resolve(route()).catch((err) => say(err.message, "error"));

// One-shot job of docker-compose.yml: registers the `everything` demo MCP server
// (@modelcontextprotocol/server-everything, Streamable HTTP) in the registry and moves it to
// approved_dev, so the gateway serves it at /everything/mcp. Idempotent: an existing server is
// kept, tools are refreshed, and only the missing lifecycle steps run.
// Reads the bootstrap admin key the registry wrote at first start (bootstrap.admin_key_file).
import { readFileSync } from 'node:fs';

const REG = process.env.REGISTRY_URL || 'http://registry:7860';
const KEY_FILE = process.env.ADMIN_KEY_FILE || '/var/lib/mcpgw/admin.key';
const URL_ = process.env.SERVER_URL || 'http://everything:3001/mcp';
const PATH = 'everything';
const key = readFileSync(KEY_FILE, 'utf8').trim();

async function call(method, path, body) {
  const res = await fetch(REG + path, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
function fail(what, r) {
  console.error(`register-everything: ${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  process.exit(1);
}

let r = await call('POST', '/api/v1/servers', {
  path: PATH,
  name: 'Everything (MCP reference server)',
  description: '@modelcontextprotocol/server-everything over Streamable HTTP (docker compose demo)',
  endpoint: { transport: 'streamable-http', url: URL_ },
  governance: { owner_team: 'Platform' },
});
if (r.status === 409) console.log(`register-everything: server ${PATH} exists; keeping it`);
else if (r.status !== 201) fail('register', r);
// Record the tools first: the security_review -> approved_dev transition approves them.
r = await call('POST', `/api/v1/servers/${PATH}/tools/refresh`);
if (r.status !== 200) fail('tools/refresh', r);
const order = ['draft', 'submitted', 'security_review', 'approved_dev'];
r = await call('GET', `/api/v1/servers/${PATH}`);
if (r.status !== 200) fail('read', r);
let at = order.indexOf(r.body.lifecycle);
for (const to of order.slice(at + 1 > 0 ? at + 1 : order.length)) {
  r = await call('POST', `/api/v1/servers/${PATH}/lifecycle`, { to, reason: 'docker compose demo' });
  if (r.status !== 200) fail(`lifecycle -> ${to}`, r);
}
console.log(`register-everything: ${PATH} is ${r.body.lifecycle}; the gateway serves it at /${PATH}/mcp`);

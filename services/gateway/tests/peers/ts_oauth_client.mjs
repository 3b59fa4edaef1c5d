// An MCP client that signs in with nothing but the URL, on the official TypeScript SDK
// (npm `@modelcontextprotocol/sdk`, the version scripts/deps/mcp-peers installs with the
// Inspector): its Streamable HTTP transport with an OAuth client provider, as Cursor and the
// Inspector do it. The 401 starts discovery, dynamic client registration and the code flow
// with PKCE; the browser step runs tests/browser/oauth_sign_in.mjs (headless Chromium) with a
// user and password; the redirect comes back to a listener on a loopback port opened here.
//
//   node ts_oauth_client.mjs URL USERNAME PASSWORD [TOOL [ARGS_JSON]]
//
// MCPGW_TEST_NODE_PEERS is where the SDK is installed (scripts/deps/mcp-peers.sh env).
// Prints one JSON line: {"client_id", "tools": [names], "call": {"tool", "result"}} or
// {"error": …} (exit 1).
import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [url, username, password, tool, args] = process.argv.slice(2);
const sdk = `${process.env.MCPGW_TEST_NODE_PEERS}/node_modules/@modelcontextprotocol/sdk/dist/esm/client`;
const { Client } = await import(`${sdk}/index.js`);
const { StreamableHTTPClientTransport } = await import(`${sdk}/streamableHttp.js`);
const { UnauthorizedError } = await import(`${sdk}/auth.js`);
const signIn = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../../tests/browser/oauth_sign_in.mjs');

/** The one authorization response, from a listener on 127.0.0.1. */
function callback() {
  let arrived;
  const code = new Promise((resolve) => { arrived = resolve; });
  const server = http.createServer((req, res) => {
    const at = new URL(req.url, 'http://127.0.0.1');
    if (at.pathname !== '/callback') { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('Signed in; you may close this window.');
    arrived(at.searchParams);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, code })));
}

/** The SDK's OAuthClientProvider, keeping everything in memory for this run. */
class Provider {
  constructor(redirectUrl) { this.redirect = redirectUrl; this.saved = {}; }
  get redirectUrl() { return this.redirect; }
  get clientMetadata() {
    return {
      client_name: 'mcpgw test: TypeScript SDK OAuth client',
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() { return this.saved.client; }
  saveClientInformation(c) { this.saved.client = c; }
  tokens() { return this.saved.tokens; }
  saveTokens(t) { this.saved.tokens = t; }
  redirectToAuthorization(u) { this.saved.authorizationUrl = u; }
  saveCodeVerifier(v) { this.saved.verifier = v; }
  codeVerifier() { return this.saved.verifier; }
}

function browse(authorizationUrl) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [signIn, username, password, authorizationUrl], { timeout: 60_000 },
      (e, stdout) => (e ? reject(new Error(`the browser step failed: ${stdout} ${e.message}`)) : resolve(JSON.parse(stdout.trim()))));
  });
}

const { server, code } = await callback();
try {
  const provider = new Provider(`http://127.0.0.1:${server.address().port}/callback`);
  const transport = () => new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  let client = new Client({ name: 'mcpgw-test-ts-oauth', version: '1.0.0' });
  let first = transport();
  try {
    await client.connect(first);
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    const browser = await browse(provider.saved.authorizationUrl.href);
    const params = await code;
    await first.finishAuth(params.get('code'));
    client = new Client({ name: 'mcpgw-test-ts-oauth', version: '1.0.0' });
    await client.connect(transport());
    provider.saved.browser = browser;
  }
  const out = {
    client_id: provider.saved.client?.client_id,
    browser: provider.saved.browser,
    tools: (await client.listTools()).tools.map((t) => t.name),
  };
  if (tool) out.call = { tool, result: await client.callTool({ name: tool, arguments: JSON.parse(args || '{}') }) };
  await client.close();
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.stack || e) }));
  process.exitCode = 1;
} finally {
  server.close();
}

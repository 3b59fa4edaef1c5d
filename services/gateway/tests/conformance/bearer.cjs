// Preload for the conformance CLI (`node --require <this file> .../conformance/dist/index.js
// server --url ...`): adds `Authorization: Bearer $MCPGW_CONFORMANCE_TOKEN` to every HTTP
// request the suite sends to $MCPGW_CONFORMANCE_ORIGIN (e.g. http://127.0.0.1:8080), and to
// nothing else. The CLI has no option to send a header (0.2.0-alpha.12: no --header, no env
// variable), and the gateway requires a bearer token on every MCP request.
//
// The suite reaches the server through Node's fetch (its own requests and the TypeScript SDK's
// transport) and through undici's request() (dns-rebinding-protection, which sets Host by
// hand). Both go through undici's global dispatcher, so one interceptor on it covers both; the
// request is otherwise untouched (method, Host, Origin, body, other headers).
"use strict";
const path = require("node:path");

const token = process.env.MCPGW_CONFORMANCE_TOKEN;
const origin = process.env.MCPGW_CONFORMANCE_ORIGIN;
if (token && origin) {
  // The undici the CLI itself imports (next to it in node_modules), so both share the
  // dispatcher registered under the global symbol that Node's fetch also reads.
  const cli = process.argv[1] ? path.dirname(path.resolve(process.argv[1])) : process.cwd();
  const undici = require(require.resolve("undici", { paths: [cli] }));
  const wanted = new URL(origin).origin;
  const value = `Bearer ${token}`;

  const withAuth = (headers) => {
    if (headers == null) return { authorization: value };
    if (Array.isArray(headers)) {
      // Either [[name, value], ...] or the flat [name, value, name, value, ...] form.
      const pairs = headers.length > 0 && Array.isArray(headers[0]);
      const names = pairs ? headers.map((h) => String(h[0])) : headers.filter((_, i) => i % 2 === 0).map(String);
      if (names.some((n) => n.toLowerCase() === "authorization")) return headers;
      return pairs ? [...headers, ["authorization", value]] : [...headers, "authorization", value];
    }
    if (typeof headers[Symbol.iterator] === "function") return withAuth([...headers]);
    if (Object.keys(headers).some((n) => n.toLowerCase() === "authorization")) return headers;
    return { ...headers, authorization: value };
  };

  const interceptor = (dispatch) => (opts, handler) => {
    let target;
    try {
      target = new URL(String(opts.origin)).origin;
    } catch {
      target = undefined;
    }
    return dispatch(target === wanted ? { ...opts, headers: withAuth(opts.headers) } : opts, handler);
  };
  undici.setGlobalDispatcher(undici.getGlobalDispatcher().compose(interceptor));

  // The SEP-2243 header scenarios (http-header-validation, http-custom-header-server-validation)
  // use node:http's request() with an options object instead.
  const http = require("node:http");
  const request = http.request;
  const target = new URL(wanted);
  const port = target.port || "80";
  const isGateway = (o) =>
    o != null &&
    typeof o === "object" &&
    !(o instanceof URL) &&
    (o.hostname ?? String(o.host ?? "").replace(/:\d+$/, "")) === target.hostname &&
    String(o.port ?? "80") === port;
  http.request = function (first, second, ...rest) {
    if (isGateway(first)) {
      first = { ...first, headers: withAuth(first.headers) };
    } else if ((typeof first === "string" || first instanceof URL) && new URL(String(first)).origin === wanted) {
      if (second != null && typeof second === "object") {
        second = { ...second, headers: withAuth(second.headers) };
      } else {
        rest.unshift(second);
        second = { headers: { authorization: value } };
      }
    }
    return request.call(this, first, second, ...rest);
  };
}

// A TCP forwarder for docker-compose.yml: listens on LISTEN_HOST:LISTEN_PORT and pipes each
// connection to TARGET_HOST:TARGET_PORT. It runs in the auth-server's network namespace so that
// http://localhost:18180 (Keycloak's issuer URL, the one browsers use) reaches Keycloak from
// inside the auth-server too. No dependencies: the node image's own runtime.
'use strict';
const net = require('net');
const env = (name, fallback) => process.env[name] || fallback;
const listenHost = env('LISTEN_HOST', '127.0.0.1');
const listenPort = Number(env('LISTEN_PORT', '8180'));
const targetHost = env('TARGET_HOST', 'keycloak');
const targetPort = Number(env('TARGET_PORT', '8180'));

const server = net.createServer((client) => {
  const upstream = net.connect(targetPort, targetHost);
  client.pipe(upstream).pipe(client);
  const close = () => { client.destroy(); upstream.destroy(); };
  client.on('error', close);
  upstream.on('error', (e) => { console.error(`loopback-proxy: ${targetHost}:${targetPort}: ${e.message}`); close(); });
});
server.on('error', (e) => { console.error(`loopback-proxy: ${e.message}`); process.exit(1); });
server.listen(listenPort, listenHost, () =>
  console.log(`loopback-proxy: ${listenHost}:${listenPort} -> ${targetHost}:${targetPort}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));

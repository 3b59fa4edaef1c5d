// Container health check without curl: exit 0 if HOST:PORT accepts a TCP connection within 3 s.
// Usage: node tcp-check.js HOST PORT
'use strict';
const [host, port] = process.argv.slice(2);
const socket = require('net').connect(Number(port), host, () => { socket.end(); process.exit(0); });
socket.setTimeout(3000, () => process.exit(1));
socket.on('error', () => process.exit(1));

// Preload for node (`node --require <this file> ...`): a TCP server that is told to
// listen on a port but no host gets 127.0.0.1 instead of every interface.
// server-everything calls app.listen(PORT), and the conformance suite's scenario
// servers listen(0): without this they would be reachable from the network.
"use strict";
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first === undefined || typeof first === "function") {
    args.unshift(0, "127.0.0.1"); // listen() / listen(cb): a random port
  } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  } else if (first && typeof first === "object" && first.port !== undefined && !first.host && !first.path) {
    args[0] = { ...first, host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};

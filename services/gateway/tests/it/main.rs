//! Integration tests of the gateway: a real registry, real MCP servers and clients, on real
//! sockets.

mod behaviour;
mod helpers;
mod idp;
mod peers;
mod proxy;
mod upstream;

//! `mcpgw-connect config <url> --client …`: the configuration of an MCP client that runs
//! `mcpgw-connect <url>` as its stdio server, in each client's documented format:
//!
//! - Claude Code: `claude mcp add <name> -- <command> <args…>` (stdio is its default transport);
//! - Claude Desktop: `claude_desktop_config.json`, `{"mcpServers": {name: {command, args}}}`;
//! - Cursor: `.cursor/mcp.json` (or `~/.cursor/mcp.json`), the same `mcpServers` shape;
//! - VS Code: `.vscode/mcp.json`, `{"servers": {name: {"type": "stdio", command, args}}}`.
//!
//! The server's name is the URL's server path (`weather` for `…/weather/mcp`), `mcpgw` for the
//! aggregated `/mcp`.

use serde_json::json;
use url::Url;

/// The MCP clients with a snippet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    ClaudeCode,
    ClaudeDesktop,
    Cursor,
    Vscode,
}

/// The name a client shows for `url`'s server.
pub fn server_name(url: &Url) -> String {
    let segments: Vec<&str> = url.path_segments().into_iter().flatten().collect();
    match segments.as_slice() {
        [.., server, "mcp"] if !server.is_empty() => (*server).to_owned(),
        _ => "mcpgw".to_owned(),
    }
}

/// The snippet for `client`; `program` is how the client starts mcpgw-connect and `args` what
/// follows it (the URL and options).
pub fn snippet(client: ClientKind, url: &Url, program: &str, args: &[String]) -> String {
    let name = server_name(url);
    let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).expect("JSON");
    match client {
        ClientKind::ClaudeCode => {
            let words: Vec<String> = std::iter::once(program.to_owned())
                .chain(args.iter().cloned())
                .map(|w| shell_quote(&w))
                .collect();
            format!(
                "claude mcp add {} -- {}",
                shell_quote(&name),
                words.join(" ")
            )
        }
        ClientKind::ClaudeDesktop | ClientKind::Cursor => pretty(json!({
            "mcpServers": {name: {"command": program, "args": args}}
        })),
        ClientKind::Vscode => pretty(json!({
            "servers": {name: {"type": "stdio", "command": program, "args": args}}
        })),
    }
}

/// Where the snippet goes, for the person reading it.
pub fn where_it_goes(client: ClientKind) -> &'static str {
    match client {
        ClientKind::ClaudeCode => "run in a terminal (add --scope user for every project)",
        ClientKind::ClaudeDesktop => {
            "merge into claude_desktop_config.json (Settings → Developer → Edit Config)"
        }
        ClientKind::Cursor => "merge into .cursor/mcp.json (this project) or ~/.cursor/mcp.json",
        ClientKind::Vscode => "merge into .vscode/mcp.json",
    }
}

/// A word as a POSIX shell reads it back.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> Vec<String> {
        vec![url.to_owned()]
    }

    #[test]
    fn each_client_gets_its_own_documented_shape() {
        let url = Url::parse("https://gw.example.com/weather/mcp").unwrap();
        let a = args(url.as_str());
        assert_eq!(
            snippet(ClientKind::ClaudeCode, &url, "mcpgw-connect", &a),
            "claude mcp add weather -- mcpgw-connect https://gw.example.com/weather/mcp"
        );
        let desktop: serde_json::Value = serde_json::from_str(&snippet(
            ClientKind::ClaudeDesktop,
            &url,
            "mcpgw-connect",
            &a,
        ))
        .unwrap();
        assert_eq!(
            desktop,
            json!({"mcpServers": {"weather": {"command": "mcpgw-connect",
                "args": ["https://gw.example.com/weather/mcp"]}}})
        );
        let vscode: serde_json::Value =
            serde_json::from_str(&snippet(ClientKind::Vscode, &url, "mcpgw-connect", &a)).unwrap();
        assert_eq!(vscode["servers"]["weather"]["type"], "stdio");
    }

    #[test]
    fn the_aggregated_endpoint_is_named_mcpgw_and_odd_words_are_quoted() {
        let url = Url::parse("http://127.0.0.1:8080/mcp").unwrap();
        assert_eq!(server_name(&url), "mcpgw");
        let line = snippet(
            ClientKind::ClaudeCode,
            &url,
            "/opt/my tools/mcpgw-connect",
            &args(url.as_str()),
        );
        assert_eq!(
            line,
            "claude mcp add mcpgw -- '/opt/my tools/mcpgw-connect' http://127.0.0.1:8080/mcp"
        );
    }
}

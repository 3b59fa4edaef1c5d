//! Text into HTML: the one escaping rule of the pages the services render themselves (the
//! auth-server's sign-in pages, the registry console's page shells), and the stylesheet they
//! share.

/// The stylesheet of the registry's web console, also the auth-server's sign-in and sign-out
/// pages': one file, so the pages a user passes through on the way in and out look like the
/// console they lead to. Each service serves it from its own origin (their CSPs allow only
/// `'self'` styles).
pub const CONSOLE_CSS: &str = include_str!("../assets/console.css");

/// Escapes text for element content and quoted attribute values (`&`, `<`, `>`, `"`, `'`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_and_quotes_become_entities() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("plain text é"), "plain text é");
    }
}

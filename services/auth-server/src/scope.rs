//! OAuth scope names and the sets of them users hold.
//!
//! A scope is an RFC 6749 `scope-token` (printable ASCII except space, `"` and `\`), at most 128
//! characters, the same rule the policy engine applies to scope document names. A user's scopes
//! come from their groups (`group_scopes` in the config); a vended token may carry only a
//! subset of them.

use std::collections::{BTreeMap, BTreeSet};

use mcpgw_core::validate::FieldError;

/// Most scopes one token request may name.
pub const MAX_SCOPES_PER_TOKEN: usize = 50;

/// A valid scope name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

impl Scope {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a scope must not be empty".to_owned());
        }
        if text.len() > 128 {
            return Err(format!(
                "a scope must be at most 128 characters (got {})",
                text.len()
            ));
        }
        if !text
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        {
            return Err(format!(
                "{text:?} is not a scope: use printable ASCII without spaces, quotes or backslashes"
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The scopes a member of `groups` holds under `group_scopes`, sorted and without repeats.
pub fn scopes_for_groups(
    group_scopes: &BTreeMap<String, Vec<String>>,
    groups: &[String],
) -> Vec<String> {
    let set: BTreeSet<&String> = groups
        .iter()
        .filter_map(|g| group_scopes.get(g))
        .flatten()
        .collect();
    set.into_iter().cloned().collect()
}

/// Checks a requested scope list against what the user holds: each entry valid, no repeats,
/// each held. Returns the scopes sorted. `field` names the list in errors (`scopes[2]`).
pub fn requested_subset(
    field: &str,
    requested: &[String],
    held: &[String],
) -> Result<Vec<String>, ScopeRefusal> {
    if requested.is_empty() {
        return Err(ScopeRefusal::Invalid(FieldError::new(
            field,
            "must name at least one scope",
        )));
    }
    let parsed = mcpgw_core::validate::list(field, requested, MAX_SCOPES_PER_TOKEN, |f, s| {
        Scope::parse(s).map_err(|m| FieldError::new(f, m))
    })
    .map_err(ScopeRefusal::Invalid)?;
    let mut seen = BTreeSet::new();
    for (i, scope) in parsed.iter().enumerate() {
        if !seen.insert(scope.as_str()) {
            return Err(ScopeRefusal::Invalid(FieldError::new(
                format!("{field}[{i}]"),
                format!("{:?} is listed twice", scope.as_str()),
            )));
        }
        if !held.iter().any(|h| h == scope.as_str()) {
            return Err(ScopeRefusal::NotHeld {
                field: format!("{field}[{i}]"),
                scope: scope.as_str().to_owned(),
            });
        }
    }
    Ok(seen.into_iter().map(str::to_owned).collect())
}

/// Why a requested scope list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeRefusal {
    /// Malformed input (422).
    Invalid(FieldError),
    /// Well-formed, but the user does not hold this scope (403).
    NotHeld { field: String, scope: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_follow_rfc_6749() {
        assert!(Scope::parse("mcp-servers-unrestricted/read").is_ok());
        assert!(Scope::parse("a:b!~").is_ok());
        for bad in [
            "",
            "has space",
            "quo\"te",
            "back\\slash",
            "é",
            &"x".repeat(129),
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_request_must_be_a_subset_of_the_held_scopes() {
        let held = vec!["a".to_owned(), "b".to_owned()];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            requested_subset("scopes", &s(&["b", "a"]), &held).unwrap(),
            held
        );
        assert_eq!(
            requested_subset("scopes", &s(&["a", "c"]), &held),
            Err(ScopeRefusal::NotHeld {
                field: "scopes[1]".into(),
                scope: "c".into()
            })
        );
        let Err(ScopeRefusal::Invalid(e)) = requested_subset("scopes", &s(&["a", "a"]), &held)
        else {
            panic!("a repeat is invalid")
        };
        assert_eq!(e.field, "scopes[1]");
        assert!(matches!(
            requested_subset("scopes", &[], &held),
            Err(ScopeRefusal::Invalid(_))
        ));
    }

    #[test]
    fn scopes_come_from_every_group() {
        let mut map = BTreeMap::new();
        map.insert("g1".to_owned(), vec!["x".to_owned(), "y".to_owned()]);
        map.insert("g2".to_owned(), vec!["y".to_owned(), "z".to_owned()]);
        let got = scopes_for_groups(&map, &["g2".to_owned(), "g1".to_owned(), "g3".to_owned()]);
        assert_eq!(got, vec!["x", "y", "z"]);
    }
}

//! Text → index terms: split identifiers and words, lowercase, fold accents, drop stopwords,
//! stem (Snowball English).
//!
//! Tool names are identifiers (`get_forecast`, `listPullRequests`, `aws.s3-list`), so every
//! separator and every case change starts a new word; digits stay with their letters (`s3`,
//! `ec2`, `v2`) because those are names in their own right. Queries and documents go through
//! the same function, so "forecasts" finds `get_forecast`.

use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};

static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// Words that carry no meaning for finding a tool. Beside the usual English function words,
/// the filler of requests phrased by agents ("I need a tool that can …"), tuned on the quality
/// set (`services/registry/tests/data/search-queries.json`).
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can", "could",
    "do", "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it",
    "its", "me", "my", "of", "on", "or", "our", "please", "should", "so", "some", "that", "the",
    "their", "them", "then", "there", "these", "this", "those", "to", "tool", "tools", "us", "was",
    "we", "were", "what", "when", "where", "which", "while", "who", "will", "with", "would", "you",
    "your", "want", "need", "let", "via", "using", "use",
];

/// Longest word kept (longer runs are hashes, ids or base64, not words).
const MAX_WORD: usize = 40;

/// The index terms of `text`, in order (duplicates kept: term frequency counts).
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in words(text) {
        if word.len() > MAX_WORD || STOPWORDS.contains(&word.as_str()) {
            continue;
        }
        if word.len() < 2 && !word.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        out.push(STEMMER.stem(&word).into_owned());
    }
    out
}

/// Splits into lowercase, accent-folded words at every non-alphanumeric character and at
/// camelCase boundaries (`getHTTPStatus` → get, http, status).
pub(crate) fn words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            flush(&mut word, &mut out);
            continue;
        }
        if c.is_uppercase() && !word.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // aB → a|B; ABc → A|Bc (the end of an acronym); A1 and 1A stay together.
            if prev.is_lowercase() || (prev.is_uppercase() && next_lower) {
                flush(&mut word, &mut out);
            }
        }
        for lower in c.to_lowercase() {
            word.push(fold(lower));
        }
    }
    flush(&mut word, &mut out);
    out
}

fn flush(word: &mut String, out: &mut Vec<String>) {
    if !word.is_empty() {
        out.push(std::mem::take(word));
    }
}

/// Folds the accented Latin letters to their base letter (é → e), so "résumé" finds "resume".
fn fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' => 'i',
        'ñ' | 'ń' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' => 'u',
        'ý' | 'ÿ' => 'y',
        'ś' | 'š' | 'ß' => 's',
        'ź' | 'ż' | 'ž' => 'z',
        'ł' => 'l',
        'ř' => 'r',
        'ť' => 't',
        'ď' => 'd',
        other => other,
    }
}

//! Container names: Docker's syntax, generated names, uniqueness, and how a user's key
//! (full id, name, unique id prefix) resolves to a container.

use super::error::{Error, Result};
use crate::containers::Container;
use std::collections::HashMap;

/// Docker's container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphanumeric())
        && n.len() >= 2
        && c.all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
}

/// The name a create asked for (without Docker's leading slash), or a generated one in
/// Docker's `adjective_surname` style, picked by the (random) id and not `taken`.
pub fn for_create(requested: Option<&str>, id: &str, taken: impl Fn(&str) -> bool) -> String {
    if let Some(n) = requested.filter(|n| !n.is_empty()) {
        return n.trim_start_matches('/').to_string();
    }
    // Eight picks from different parts of the id, then a digit appended as dockerd does
    // after its retries; the id itself as the last resort (it is unique).
    let picks = (0..8).map(|i| generated(id, i)).collect::<Vec<_>>();
    let with_digit = picks
        .iter()
        .flat_map(|p| (0..10).map(move |d| format!("{p}{d}")));
    picks
        .iter()
        .cloned()
        .chain(with_digit)
        .find(|n| !taken(n))
        .unwrap_or_else(|| format!("vch_{id}"))
}

/// The `n`th generated name of `id`: two words picked by 4-hex-digit windows of it.
fn generated(id: &str, n: usize) -> String {
    let window = |at: usize| {
        let at = (at * 4) % id.len().saturating_sub(3).max(1);
        usize::from_str_radix(id.get(at..at + 4).unwrap_or("0"), 16).unwrap_or(0)
    };
    let adjective = ADJECTIVES[window(2 * n) % ADJECTIVES.len()];
    let surname = SURNAMES[window(2 * n + 1) % SURNAMES.len()];
    format!("{adjective}_{surname}")
}

/// Words for generated names (Docker's style: a mood or quality, then a pioneer of
/// computing, mathematics or science).
const ADJECTIVES: &[&str] = &[
    "brave", "calm", "clever", "cool", "curious", "daring", "eager", "elegant", "epic", "fervent",
    "fond", "friendly", "gallant", "gentle", "happy", "hopeful", "jolly", "keen", "kind", "lucid",
    "merry", "modest", "nifty", "noble", "patient", "placid", "quiet", "quirky", "relaxed",
    "serene", "sharp", "smart", "steady", "stoic", "sunny", "tender", "thirsty", "trusting",
    "upbeat", "vibrant", "vigilant", "wise", "witty", "zealous",
];

const SURNAMES: &[&str] = &[
    "agnesi",
    "allen",
    "babbage",
    "backus",
    "bardeen",
    "bartik",
    "bell",
    "boole",
    "borg",
    "cerf",
    "clarke",
    "codd",
    "conway",
    "curie",
    "darwin",
    "dijkstra",
    "easley",
    "engelbart",
    "euler",
    "faraday",
    "fermat",
    "feynman",
    "franklin",
    "gauss",
    "goldberg",
    "hamilton",
    "hawking",
    "hodgkin",
    "hopper",
    "kahan",
    "kare",
    "knuth",
    "lamarr",
    "lamport",
    "liskov",
    "lovelace",
    "maxwell",
    "mccarthy",
    "meitner",
    "mirzakhani",
    "noether",
    "pascal",
    "perlman",
    "ritchie",
    "shannon",
    "sutherland",
    "thompson",
    "torvalds",
    "turing",
    "wilkes",
    "wing",
    "yalow",
];

/// The VM's name: admins find a container's VM by it.
pub fn vm_name(name: &str, id: &str) -> String {
    format!("{name}-{}", &id[..12.min(id.len())])
}

/// A fresh container (or exec, or anonymous volume) id: 64 hex digits, as Docker's.
pub fn random_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A name a container may take: valid, and no other container has it.
pub fn check_new(cs: &HashMap<String, Container>, name: &str) -> Result<()> {
    if !valid(name) {
        return Err(Error::Invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    match cs.values().find(|c| c.meta.name == name) {
        Some(other) => Err(Error::NameConflict {
            name: name.to_string(),
            id: other.meta.id.clone(),
        }),
        None => Ok(()),
    }
}

/// Full id from an id, a name (with or without the slash) or a unique id prefix.
pub fn resolve(cs: &HashMap<String, Container>, key: &str) -> Result<String> {
    let key = key.trim_start_matches('/');
    if cs.contains_key(key) {
        return Ok(key.to_string());
    }
    if let Some(c) = cs.values().find(|c| c.meta.name == key) {
        return Ok(c.meta.id.clone());
    }
    let matches: Vec<&String> = cs.keys().filter(|id| id.starts_with(key)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::NoSuchContainer(key.to_string())),
        _ => Err(Error::Invalid(format!(
            "multiple IDs found with provided prefix: {key}"
        ))),
    }
}

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

/// The name a create asked for (without Docker's leading slash), or one made from the id.
pub fn for_create(requested: Option<&str>, id: &str) -> String {
    match requested.filter(|n| !n.is_empty()) {
        Some(n) => n.trim_start_matches('/').to_string(),
        None => format!("vch_{}", &id[..8.min(id.len())]),
    }
}

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

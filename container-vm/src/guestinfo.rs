//! The `guestinfo.vch.*` keys of a container VM's `extraConfig`, and how a value larger
//! than one key may hold is split over numbered keys and joined again.
//!
//! The VCH writes the spec before the VM runs (persistent); the tether writes the state
//! keys while it runs (volatile on vSphere: gone at power-off). See docs/container-vm.md.

use std::io;

/// The container spec (JSON, see [`crate::spec`]); chunked when large (see [`split`]).
pub const SPEC_KEY: &str = "guestinfo.vch.spec";
/// The container's state (see [`crate::state::ContainerState`]).
pub const STATE_KEY: &str = "guestinfo.vch.state";
/// The process's pid in the VM's pid namespace.
pub const PID_KEY: &str = "guestinfo.vch.pid";
/// RFC 3339 with nanoseconds.
pub const STARTED_KEY: &str = "guestinfo.vch.started_at";
pub const FINISHED_KEY: &str = "guestinfo.vch.finished_at";
/// Docker's convention: the code, or 128+signal; 125 agent error, 126/127 exec failures.
pub const EXIT_CODE_KEY: &str = "guestinfo.vch.exit_code";
/// Why the container failed (or a template could not get ready).
pub const ERROR_KEY: &str = "guestinfo.vch.error";
/// `true` when the container's process was killed for exceeding the VM's memory.
pub const OOM_KILLED_KEY: &str = "guestinfo.vch.oom_killed";
/// On a template VM (no spec): the disk id of the scratch disk its clones inherit; the
/// template formats it once so that no clone has to.
pub const TEMPLATE_SCRATCH_KEY: &str = "guestinfo.vch.template.scratch";

/// The most bytes one value holds. A guest's message to the VMX is limited to 64 KiB
/// including the request text; staying below it lets the same split serve values either
/// side writes (the VMX answers the guest with up to about 1 MiB).
pub const MAX_VALUE: usize = 60 * 1024;

/// `<key>.chunks`: how many parts a split value has.
pub fn chunks_key(key: &str) -> String {
    format!("{key}.chunks")
}

/// `<key>.<i>`: part `i` of a split value.
pub fn chunk_key(key: &str, i: usize) -> String {
    format!("{key}.{i}")
}

/// Why a value could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error("guestinfo channel: {0}")]
    Io(#[from] io::Error),
    #[error("{key}.chunks is '{value}', not a number")]
    Chunks { key: String, value: String },
    #[error("{0} is missing")]
    Missing(String),
}

/// The keys and values that store `value` under `key`: `key` itself when the value fits
/// in one, else `<key>.chunks = N` and the parts `<key>.0` .. `<key>.N-1`.
///
/// Parts never begin or end with whitespace (an XML transport may trim it) unless the
/// value offers no other place to cut. Written once per key (the spec, at clone time): a
/// value of a different shape written over it would leave the other shape's keys behind.
pub fn split(key: &str, value: &str) -> Vec<(String, String)> {
    if value.len() <= MAX_VALUE {
        return vec![(key.to_string(), value.to_string())];
    }
    let mut parts = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let cut = cut_point(rest);
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    let mut out = vec![(chunks_key(key), parts.len().to_string())];
    out.extend(
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| (chunk_key(key, i), p.to_string())),
    );
    out
}

/// Where to end the first part of `rest`: at most `MAX_VALUE` bytes, on a character
/// boundary, preferably with no whitespace on either side of the cut.
fn cut_point(rest: &str) -> usize {
    if rest.len() <= MAX_VALUE {
        return rest.len();
    }
    let mut cut = MAX_VALUE;
    while !rest.is_char_boundary(cut) {
        cut -= 1;
    }
    let hard = cut;
    let space_around = |c: usize| {
        rest[..c].ends_with(|ch: char| ch.is_whitespace())
            || rest[c..].starts_with(|ch: char| ch.is_whitespace())
    };
    while cut > hard / 2 && (!rest.is_char_boundary(cut) || space_around(cut)) {
        cut -= 1;
    }
    if cut > hard / 2 {
        cut
    } else {
        hard
    }
}

/// Reads the value stored under `key` (whole or split) through `get`; `Ok(None)` when
/// there is none. An empty value counts as none: vSphere removes a key set to "".
pub fn join(
    key: &str,
    mut get: impl FnMut(&str) -> io::Result<Option<String>>,
) -> Result<Option<String>, ValueError> {
    let mut get = |k: &str| get(k).map(|v| v.filter(|v| !v.is_empty()));
    let Some(n) = get(&chunks_key(key))? else {
        return Ok(get(key)?);
    };
    let count: usize = n.trim().parse().map_err(|_| ValueError::Chunks {
        key: key.to_string(),
        value: n.clone(),
    })?;
    let mut s = String::new();
    for i in 0..count {
        let k = chunk_key(key, i);
        s.push_str(&get(&k)?.ok_or(ValueError::Missing(k))?);
    }
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(String, String)], key: &str) -> Result<Option<String>, ValueError> {
        let m: HashMap<_, _> = pairs.iter().cloned().collect();
        join(key, |k| Ok(m.get(k).cloned()))
    }

    #[test]
    fn a_small_value_is_one_key() {
        let pairs = split(SPEC_KEY, "{\"id\":\"x\"}");
        assert_eq!(
            pairs,
            vec![(SPEC_KEY.to_string(), "{\"id\":\"x\"}".to_string())]
        );
        assert_eq!(
            read(&pairs, SPEC_KEY).unwrap().as_deref(),
            Some("{\"id\":\"x\"}")
        );
    }

    #[test]
    fn a_large_value_is_split_into_numbered_keys_and_joined_back() {
        // Multi-byte characters and spaces around every possible cut.
        let value: String = "é ab ".repeat(MAX_VALUE / 2);
        let pairs = split("guestinfo.vch.x", &value);
        assert_eq!(pairs[0].0, "guestinfo.vch.x.chunks");
        let n: usize = pairs[0].1.parse().unwrap();
        assert_eq!(pairs.len(), n + 1);
        assert!(n >= 2);
        for (i, (k, v)) in pairs[1..].iter().enumerate() {
            assert_eq!(k, &format!("guestinfo.vch.x.{i}"));
            assert!(v.len() <= MAX_VALUE);
            assert!(!v.starts_with(' '), "part {i}");
            assert!(i == n - 1 || !v.ends_with(' '), "part {i}");
        }
        assert_eq!(read(&pairs, "guestinfo.vch.x").unwrap(), Some(value));
    }

    #[test]
    fn a_value_of_only_spaces_is_still_split_within_the_limit() {
        let value = " ".repeat(MAX_VALUE * 2 + 1);
        let pairs = split("k", &value);
        assert_eq!(pairs[0].1, "3");
        assert_eq!(read(&pairs, "k").unwrap(), Some(value));
    }

    #[test]
    fn missing_and_bad_parts_are_errors_naming_the_key() {
        let pairs = vec![("k.chunks".to_string(), "2".to_string())];
        assert_eq!(read(&pairs, "k").unwrap_err().to_string(), "k.0 is missing");
        let pairs = vec![("k.chunks".to_string(), "two".to_string())];
        assert_eq!(
            read(&pairs, "k").unwrap_err().to_string(),
            "k.chunks is 'two', not a number"
        );
    }

    #[test]
    fn absent_and_empty_values_are_none() {
        assert_eq!(read(&[], "k").unwrap(), None);
        let pairs = vec![("k".to_string(), String::new())];
        assert_eq!(read(&pairs, "k").unwrap(), None);
    }
}

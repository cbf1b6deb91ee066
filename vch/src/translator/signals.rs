//! Signals as `docker stop -s` / `docker kill -s` name them, and what each verb sends.

/// SIGKILL: for a VM, a power-off (nothing in the guest can catch it).
pub const KILL: i32 = 9;
/// dockerd's default stop signal.
pub const TERM: i32 = 15;

/// A signal given as a name (`TERM`, `SIGTERM`, `term`) or a number (1..=64).
pub fn number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.trim_start_matches("SIG");
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "WINCH" => 28,
        _ => return None,
    })
}

/// `docker stop`'s signal: the one asked for when it parses, else SIGTERM.
pub fn for_stop(requested: Option<&str>) -> i32 {
    requested.and_then(number).unwrap_or(TERM)
}

/// `docker kill`'s signal: SIGKILL by default; `Err` names a signal that does not exist.
pub fn for_kill(requested: Option<&str>) -> Result<i32, String> {
    match requested.filter(|s| !s.is_empty()) {
        None => Ok(KILL),
        Some(s) => number(s).ok_or_else(|| format!("Invalid signal: {s}")),
    }
}

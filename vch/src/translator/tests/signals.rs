use super::super::signals::*;

#[test]
fn names_with_and_without_sig_in_any_case() {
    assert_eq!(number("TERM"), Some(15));
    assert_eq!(number("SIGTERM"), Some(15));
    assert_eq!(number("sigkill"), Some(9));
    assert_eq!(number("hup"), Some(1));
    assert_eq!(number("WINCH"), Some(28));
    assert_eq!(number("USR1"), Some(10));
    assert_eq!(number("BOGUS"), None);
}

#[test]
fn numbers_within_1_to_64() {
    assert_eq!(number("9"), Some(9));
    assert_eq!(number("64"), Some(64));
    assert_eq!(number("0"), None);
    assert_eq!(number("65"), None);
    assert_eq!(number("-1"), None);
}

#[test]
fn stop_sends_term_unless_told_otherwise() {
    assert_eq!(for_stop(None), TERM);
    assert_eq!(for_stop(Some("SIGINT")), 2);
    assert_eq!(for_stop(Some("nonsense")), TERM);
}

#[test]
fn kill_sends_kill_by_default_and_refuses_unknown_signals() {
    assert_eq!(for_kill(None), Ok(KILL));
    assert_eq!(for_kill(Some("")), Ok(KILL));
    assert_eq!(for_kill(Some("USR2")), Ok(12));
    assert_eq!(for_kill(Some("NOPE")), Err("Invalid signal: NOPE".into()));
}

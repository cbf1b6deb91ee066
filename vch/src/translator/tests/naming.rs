use super::super::naming::*;
use super::{id, meta, spec};
use crate::containers::{Container, Status};
use std::collections::HashMap;
use vsphere_client::MoRef;

fn cache(entries: &[(&str, &str)]) -> HashMap<String, Container> {
    entries
        .iter()
        .map(|(i, n)| {
            let c = Container {
                meta: meta(i, n, super::defaults()),
                spec: spec(i),
                vm: MoRef::new("VirtualMachine", *i),
                vm_name: vm_name(n, i),
                status: Status::Created,
                started_at: None,
                finished: None,
                parked: true,
                watched: false,
                interrupted: false,
                reported: Default::default(),
            };
            (i.to_string(), c)
        })
        .collect()
}

#[test]
fn docker_name_syntax() {
    for ok in ["ab", "web", "web-1", "a.b_c-d", "0day", "X9"] {
        assert!(valid(ok), "{ok}");
    }
    for bad in [
        "", "a", "-web", "_web", ".web", "we b", "web/1", "wéb", "web:1",
    ] {
        assert!(!valid(bad), "{bad}");
    }
}

#[test]
fn generated_names_are_docker_style_and_avoid_taken_ones() {
    let free = |_: &str| false;
    let i = random_id();
    let n = for_create(None, &i, free);
    let (adjective, surname) = n.split_once('_').unwrap();
    assert!(valid(&n), "{n}");
    assert!(adjective.chars().all(|c| c.is_ascii_lowercase()), "{n}");
    assert!(surname.chars().all(|c| c.is_ascii_lowercase()), "{n}");
    // The same id gives the same name; an empty request is no request.
    assert_eq!(for_create(Some(""), &i, free), n);
    // A taken name is passed over, for other words first, then with a digit.
    let other = for_create(None, &i, |c| c == n);
    assert_ne!(other, n);
    let digit = for_create(None, &i, |c| !c.ends_with(|d: char| d.is_ascii_digit()));
    assert!(digit.ends_with(|d: char| d.is_ascii_digit()), "{digit}");
    // With every name taken, the unique id still names it.
    assert_eq!(for_create(None, &i, |_| true), format!("vch_{i}"));
    // Ids spread over the words.
    let distinct: std::collections::HashSet<String> = (0..200)
        .map(|_| for_create(None, &random_id(), free))
        .collect();
    assert!(distinct.len() > 150, "{}", distinct.len());
}

#[test]
fn given_names_lose_the_slash() {
    let i = id("abcdef12");
    assert_eq!(for_create(Some("/web"), &i, |_| true), "web");
    assert_eq!(for_create(Some("web"), &i, |_| false), "web");
}

#[test]
fn vm_names_carry_the_short_id() {
    assert_eq!(vm_name("web", &id("0123456789ab")), "web-0123456789ab");
}

#[test]
fn random_ids_are_64_hex_digits_and_differ() {
    let (a, b) = (random_id(), random_id());
    assert_eq!(a.len(), 64);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}

#[test]
fn resolves_full_id_name_slash_name_and_unique_prefix() {
    let (a, b) = (id("aaa1"), id("bbb2"));
    let cs = cache(&[(&a, "web"), (&b, "db")]);
    assert_eq!(resolve(&cs, &a).unwrap(), a);
    assert_eq!(resolve(&cs, "web").unwrap(), a);
    assert_eq!(resolve(&cs, "/db").unwrap(), b);
    assert_eq!(resolve(&cs, "bb").unwrap(), b);
}

#[test]
fn unknown_keys_are_404_and_ambiguous_prefixes_400() {
    let cs = cache(&[(&id("abc1"), "one"), (&id("abc2"), "two")]);
    let e = resolve(&cs, "zzz").unwrap_err();
    assert_eq!(
        crate::translator::error::to_docker(e).status().as_u16(),
        404
    );
    let e = resolve(&cs, "abc").unwrap_err();
    let d = crate::translator::error::to_docker(e);
    assert_eq!(d.status().as_u16(), 400);
    assert!(d.to_string().contains("multiple IDs"), "{d}");
}

#[test]
fn a_name_wins_over_an_id_prefix() {
    // Names are looked up before prefixes: a container named like another's id prefix.
    let (a, b) = (id("cafe"), id("beef"));
    let cs = cache(&[(&a, "one"), (&b, "cafe")]);
    assert_eq!(resolve(&cs, "cafe").unwrap(), b);
    assert_eq!(resolve(&cs, "caf").unwrap(), a);
}

#[test]
fn new_names_must_be_valid_and_free() {
    let a = id("aa");
    let cs = cache(&[(&a, "web")]);
    assert!(check_new(&cs, "db").is_ok());
    match check_new(&cs, "web").unwrap_err() {
        crate::translator::Error::NameConflict { name, id } => {
            assert_eq!((name.as_str(), id.as_str()), ("web", a.as_str()))
        }
        e => panic!("{e:?}"),
    }
    let e = crate::translator::error::to_docker(check_new(&cs, "-x").unwrap_err());
    assert_eq!(e.status().as_u16(), 400);
    assert!(e.to_string().contains("Invalid container name (-x)"), "{e}");
}

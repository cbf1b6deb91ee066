//! docs/api-coverage.md must list exactly the router's routes, with the right status
//! (and, for 501 routes, the message the front end gives).

use std::collections::BTreeSet;

use docker_api::routes::{Handler, ROUTES};

#[test]
fn coverage_doc_matches_route_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api-coverage.md");
    let doc = std::fs::read_to_string(path).expect("docs/api-coverage.md");

    let mut documented = BTreeSet::new();
    for line in doc.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 3 || cells[0] == "Method" || cells[0].starts_with("---") {
            continue;
        }
        let note = cells.get(3).copied().unwrap_or("").to_string();
        let row = (
            cells[0].to_string(),
            cells[1].trim_matches('`').to_string(),
            cells[2].to_string(),
            if cells[2] == "501" {
                note
            } else {
                String::new()
            },
        );
        assert!(documented.insert(row.clone()), "listed twice: {row:?}");
    }

    let routed: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| {
            let note = match r.handler {
                Handler::Unsupported(f) => format!("\"{f} is not supported by this VCH\""),
                _ => String::new(),
            };
            (
                r.method.to_string(),
                r.pattern.to_string(),
                r.status().to_string(),
                note,
            )
        })
        .collect();

    let missing: Vec<_> = routed.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/api-coverage.md is out of date\nnot documented: {missing:#?}\nnot routed: {stale:#?}"
    );
    let implemented = ROUTES
        .iter()
        .filter(|r| r.status() == "implemented")
        .count();
    assert!(
        doc.contains(&format!(
            "{implemented} of {} routes implemented",
            ROUTES.len()
        )),
        "update the route count line"
    );
}

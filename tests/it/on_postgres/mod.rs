//! The test matrix's second column (issue #19): the same test files as the root of this binary,
//! compiled again here with every store on PostgreSQL (`helpers`, on `pg_server`'s throwaway
//! server), so that each test is written once and both backends must give its answers. A file
//! included here names its helpers and sibling modules through `super::`, never `crate::`.
//! Tests that need the redb file itself stay out (`redb_file`).

mod helpers;

#[path = "../access.rs"]
mod access;
#[path = "../approval_clocks.rs"]
mod approval_clocks;
#[path = "../approvals.rs"]
mod approvals;
#[path = "../codes_and_schemas.rs"]
mod codes_and_schemas;
#[path = "../console.rs"]
mod console;
#[path = "../engine.rs"]
mod engine;
#[path = "../http.rs"]
mod http;
#[path = "../idempotency.rs"]
mod idempotency;
#[path = "../import_job.rs"]
mod import_job;
#[path = "../lifecycle.rs"]
mod lifecycle;
#[path = "../model.rs"]
mod model;
#[path = "../persons.rs"]
mod persons;
#[path = "../problems.rs"]
mod problems;
#[path = "../security.rs"]
mod security;
#[path = "../seed_policies.rs"]
mod seed_policies;
#[path = "../step_order.rs"]
mod step_order;
#[path = "../time_conditions.rs"]
mod time_conditions;
#[path = "../transfers.rs"]
mod transfers;

/// A file included here that named `crate::helpers`, or a sibling as `crate::…`, would quietly
/// run that part on redb in this column too.
#[test]
fn the_included_files_name_their_helpers_and_siblings_through_super() {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let included: Vec<&str> = include_str!("mod.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("#[path = \"../")?.strip_suffix(".rs\"]"))
        .collect();
    assert!(included.contains(&"engine"), "{included:?}");
    for file in &included {
        let text = std::fs::read_to_string(here.join(format!("{file}.rs"))).expect("read");
        for module in included.iter().chain(&["helpers"]) {
            assert!(
                !text.contains(&format!("crate::{module}")),
                "{file}.rs names crate::{module}; write super::{module}"
            );
        }
    }
}

//! Integration tests: one binary, real redb files in temp dirs, real HTTP servers on 127.0.0.1.
//! `on_postgres` runs the engine, HTTP, model and other backend-agnostic test files again with
//! every store on PostgreSQL; `redb_file` holds the tests that need the redb file itself.

// The test matrix: `on_postgres` compiles test files of this binary a second time, on the other
// backend.
#![allow(clippy::duplicate_mod)]

mod helpers;

mod access;
mod approval_clocks;
mod approvals;
mod architecture;
mod audit;
mod batches;
mod binary;
mod browser;
mod certificates;
mod chain;
mod codes_and_schemas;
mod console;
mod crash;
mod debian;
mod engine;
mod exchange;
mod faults;
mod fields_and_package_bounds;
mod fuzz_regressions;
mod hostile;
mod http;
mod idempotency;
mod import_job;
mod kv_contract;
mod lifecycle;
mod migrate;
mod model;
mod on_postgres;
mod persons;
mod pg;
mod pg_server;
mod policy_readings;
mod problems;
mod process;
mod redb_file;
mod replays_and_connections;
mod sandbox;
mod security;
mod seed_policies;
mod step_order;
mod time_conditions;
mod timelines;
mod tokens;
mod transfers;
mod verify_replay;

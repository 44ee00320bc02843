//! Integration tests: one binary, real redb files in temp dirs, real HTTP servers on 127.0.0.1.

mod helpers;

mod access;
mod approvals;
mod architecture;
mod audit;
mod batches;
mod binary;
mod chain;
mod codes_and_schemas;
mod crash;
mod engine;
mod exchange;
mod faults;
mod fields_and_package_bounds;
mod fuzz_regressions;
mod hostile;
mod http;
mod idempotency;
mod import_job;
mod lifecycle;
mod model;
mod persons;
mod process;
mod replays_and_connections;
mod sandbox;
mod security;
mod seed_policies;
mod step_order;
mod time_conditions;
mod timelines;
mod tokens;
mod verify_replay;

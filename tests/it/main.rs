//! Integration tests: one binary, real redb files in temp dirs, real HTTP servers on 127.0.0.1.

mod helpers;

mod architecture;
mod binary;
mod chain;
mod crash;
mod engine;
mod exchange;
mod faults;
mod fuzz_regressions;
mod http;
mod lifecycle;
mod model;
mod sandbox;
mod seed_policies;

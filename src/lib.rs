//! xueji: the student-status (学籍) rules service.
//!
//! Students, approval requests and a tamper-evident history live in one redb file; every status
//! transition is decided by the jurisdiction's policy package (Rhai scripts); the HTTP service
//! serves school portals. See `ARCHITECTURE.md` for the map.

pub mod auth;
pub mod batch;
pub mod cli;
pub mod codes;
pub mod console;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod exchange;
pub mod http;
pub mod keys;
pub mod policy;
pub mod store;

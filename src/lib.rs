//! xueji: the student-status (学籍) rules service.
//!
//! Students, approval requests and a tamper-evident history live in one redb file; every status
//! transition is decided by the jurisdiction's policy package (Rhai scripts); the HTTP service
//! serves school portals. See `ARCHITECTURE.md` for the map.
//!
//! The modules, by what they are for:
//! - [`engine`]: the library. [`engine::Xueji`] decides and records every operation and answers
//!   every read; it is the store's only client. An embedder opens a store
//!   ([`engine::Store::open`]) and builds a `Xueji` on it (`examples/embed.rs`).
//! - [`domain`], [`policy`]: the types and rules of the state machine and the policy packages;
//!   no I/O. [`auth`] (roles, tokens, scope) and [`codes`] (every code with its label) likewise.
//! - Adapters over the engine: [`http`] (with the [`console`]), [`cli`], [`exchange`] and
//!   [`batch`] (file formats and their command lines), [`demo`], [`keys`] (key files).
//! - [`store`]: the redb store. Public only so that tests, benches and embedders can open one on
//!   a backend of their own (fault injection, metering) and look at what was written; inside the
//!   crate nothing past the engine names it (`tests/it/architecture.rs`).

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

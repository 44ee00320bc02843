//! `crate::helpers` with every store on PostgreSQL: the files included under `on_postgres` name
//! `super::helpers`, and get these four instead of the redb ones, the rest unchanged.

pub use crate::helpers::*;
use xueji::policy::PackageSet;

pub fn engine_with(set: &PackageSet) -> TestEngine {
    Backend::Postgres.engine_with(set)
}

pub fn engine() -> TestEngine {
    Backend::Postgres.engine()
}

pub async fn spawn_server() -> TestServer {
    Backend::Postgres.spawn_server().await
}

pub async fn spawn_server_with(packages: &PackageSet) -> TestServer {
    Backend::Postgres.spawn_server_with(packages).await
}

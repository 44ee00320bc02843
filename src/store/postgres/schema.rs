//! The PostgreSQL schema: a versioned list of steps, applied on open in one transaction under an
//! advisory lock (two nodes opening the same schema at once: the second waits, then finds the
//! steps done), each recorded in `xueji_schema`.

use super::super::StoreError;
use super::PostgresBackend;

/// One change of the schema. A released step is never edited: a later change is a new step.
enum Step {
    /// One table per logical table: `kv_<name>`, keyed by `(jurisdiction, k)` (`keys`), both
    /// compared bytewise (`COLLATE "C"`, the order of Rust's `str` and of redb).
    CreateTables(&'static [&'static str]),
}

const STEPS: &[Step] = &[Step::CreateTables(&[
    "meta",
    "schools",
    "students",
    "event_records",
    "timeline_steps",
    "student_locator",
    "idx_national_id",
    "idx_id_card",
    "idx_person",
    "idx_class",
    "idx_status",
    "idx_deadline",
    "requests",
    "idx_open_request",
    "idx_request_status",
    "tokens",
    "token_ids",
    "policy_versions",
    "idempotency",
    "log_leaves",
    "log_heads",
    "idx_school_members",
    "stat_totals",
    "stat_changes",
    "batches",
    "batch_items",
    "certificates_used",
    "problems",
    "idx_open_problem",
])];

impl Step {
    fn sql(&self) -> String {
        match self {
            Step::CreateTables(names) => names
                .iter()
                .map(|name| {
                    format!(
                        "CREATE TABLE kv_{name} (\
                         jurisdiction text COLLATE \"C\" NOT NULL, \
                         k text COLLATE \"C\" NOT NULL, \
                         v bytea NOT NULL, \
                         PRIMARY KEY (jurisdiction, k));"
                    )
                })
                .collect(),
        }
    }
}

/// Checks that the server's commits are durable, then brings the schema up to date.
pub(super) fn open(backend: &PostgresBackend) -> Result<(), StoreError> {
    let session = backend.session(&backend.writes, "BEGIN")?;
    let settings = session.query(
        "SELECT current_setting('fsync'), current_setting('synchronous_commit')",
        &[],
    )?;
    let fsync: String = settings[0].get(0);
    let synchronous_commit: String = settings[0].get(1);
    if fsync != "on" || synchronous_commit == "off" {
        return Err(StoreError::Storage(format!(
            "postgres commits are not durable (fsync={fsync}, synchronous_commit={synchronous_commit}): \
             an acknowledged change could be lost in a crash; set fsync=on and synchronous_commit=on"
        )));
    }
    // Per schema (the first of the search path), so that stores in two schemas of one database
    // open independently.
    session.query(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.xueji_schema'))",
        &[],
    )?;
    session.execute(
        "CREATE TABLE IF NOT EXISTS xueji_schema (\
         version integer PRIMARY KEY, \
         applied_at timestamptz NOT NULL DEFAULT now())",
        &[],
    )?;
    let done: i32 =
        session.query("SELECT coalesce(max(version), 0) FROM xueji_schema", &[])?[0].get(0);
    let done = usize::try_from(done)
        .map_err(|_| StoreError::Storage(format!("postgres schema version {done}")))?;
    if done > STEPS.len() {
        return Err(StoreError::NewerSchema(done as u64));
    }
    for (index, step) in STEPS.iter().enumerate().skip(done) {
        session.batch(&step.sql())?;
        let version = i32::try_from(index + 1)
            .map_err(|_| StoreError::Storage("postgres schema: too many steps".into()))?;
        session.execute(
            "INSERT INTO xueji_schema (version) VALUES ($1)",
            &[&version],
        )?;
    }
    session.commit_with(&[])
}

/// The names of the tables the steps create, for the test that they are all of `store::tables`.
#[cfg(test)]
fn created_tables() -> Vec<&'static str> {
    STEPS
        .iter()
        .flat_map(|step| match step {
            Step::CreateTables(names) => names.iter().copied(),
        })
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_table_of_the_store_has_a_postgres_table() {
        let mut created = super::created_tables();
        created.sort_unstable();
        let mut store: Vec<&str> = crate::store::tables::ALL.iter().map(|t| t.name()).collect();
        store.sort_unstable();
        assert_eq!(created, store);
    }
}

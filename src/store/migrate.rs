//! Bringing a backend's tables to this build's schema, when the store opens: every table made,
//! the salt drawn once, and each schema step a store written by an older build lacks, in one
//! write transaction (so a failed step leaves the store as it was). Written against the kv
//! traits, so every backend migrates alike.

use std::collections::HashMap;

use super::kv::{Backend, WriteTable, WriteTxn};
use super::records::{
    Logged, StoredStepV7, context_key, each_timeline, encode_step, event_key, parse_event_key,
    step_key, tally_state_key, with_log_index,
};
use super::tables::*;
use super::{SCHEMA_VERSION, StoreError, decode, decode_leaf, id_card_key, idempotency, tally};
use crate::domain::merkle::{self, Frontier};
use crate::domain::tally::{DatedCounts, TallyState, dated_changes};
use crate::domain::{Event, Student};

/// Makes every table, reads (or draws) the salt, migrates an older schema and purges the stored
/// answers earlier versions left; returns the salt. Refuses a store of a newer schema.
pub(super) fn prepare(backend: &dyn Backend) -> Result<[u8; 32], StoreError> {
    let mut salt = [0u8; 32];
    let txn = backend.begin_write()?;
    {
        for t in ALL {
            txn.open_table(*t)?;
        }
        let mut meta = txn.open_table(META)?;
        if meta.get(super::copy::COPY_INCOMPLETE)?.is_some() {
            return Err(StoreError::CopyIncomplete);
        }
        match meta.get("salt")? {
            Some(s) if s.len() == 32 => salt.copy_from_slice(&s),
            _ => {
                use rand::RngCore;
                rand::rngs::OsRng.fill_bytes(&mut salt);
                meta.insert("salt", salt.as_slice())?;
            }
        }
        let schema = meta
            .get("schema_version")?
            .map(|v| decode::<u64>(&v))
            .transpose()?;
        match schema {
            Some(v) if v > SCHEMA_VERSION => return Err(StoreError::NewerSchema(v)),
            Some(SCHEMA_VERSION) => {}
            old => {
                migrate(&*txn, old, &salt)?;
                meta.insert(
                    "schema_version",
                    serde_json::to_vec(&SCHEMA_VERSION)?.as_slice(),
                )?;
            }
        }
        // Stored answers of earlier versions (unbounded keys, created tokens' secrets) and
        // expired ones go at every start; the writer purges the rest as it goes.
        let mut answers = txn.open_table(IDEMPOTENCY)?;
        idempotency::purge_legacy(&mut *answers)?;
        idempotency::purge(&mut *answers, idempotency::unix_now(), None)?;
    }
    txn.commit()?;
    Ok(salt)
}

/// The steps from schema `old` (none: a new store) to this build's.
fn migrate(txn: &dyn WriteTxn, old: Option<u64>, salt: &[u8; 32]) -> Result<(), StoreError> {
    // First, so that the older migrations work on the current layout.
    if let Some(v) = old.filter(|v| *v < 8) {
        migrate_to_schema_8(txn, v)?;
    }
    if old.is_some_and(|v| v < 3) {
        backfill_timelines(txn)?;
    }
    if old.is_some_and(|v| v < 4) {
        backfill_tallies(txn)?;
    }
    if old.is_some_and(|v| v < 5) {
        rekey_id_cards(txn, salt)?;
    }
    if old.is_some_and(|v| v < 6) {
        backfill_tally_states(txn)?;
    }
    if old.is_some_and(|v| v < 9) {
        key_identities_by_student(txn)?;
    }
    Ok(())
}

fn undecodable(k: &str) -> StoreError {
    StoreError::Storage(format!("undecodable record key {}", k.replace(SEP, "/")))
}

/// Builds the Merkle log of a store written before it existed (schema 1): every event, in key
/// order, each leaf naming its event.
fn backfill_log(txn: &dyn WriteTxn) -> Result<(), StoreError> {
    let events = txn.open_table(legacy::EVENTS)?;
    let mut leaves = txn.open_table(LOG_LEAVES)?;
    let mut heads = txn.open_table(LOG_HEADS)?;
    let mut frontiers: std::collections::BTreeMap<String, Frontier> = Default::default();
    for item in events.iter()? {
        let (k, v) = item?;
        let event: Event = decode(&v)?;
        let hash = merkle::from_hex(&event.hash)
            .ok_or_else(|| StoreError::Storage(format!("event {k} has no hash")))?;
        let frontier = frontiers.entry(event.jurisdiction.clone()).or_default();
        let mut leaf = hash.to_vec();
        leaf.extend_from_slice(k.as_bytes());
        leaves.insert(
            &key(&[&event.jurisdiction, &log_index_part(frontier.size)]),
            &leaf,
        )?;
        frontier.push(merkle::leaf_hash(&hash));
    }
    for (jur, f) in frontiers {
        heads.insert(&jur, &f.to_bytes())?;
    }
    Ok(())
}

/// Moves a store written before schema 8 to its layout: each event and its context to its place
/// in the jurisdiction's log (`EVENT_RECORDS`), each step given its event's log index, tally
/// states into `TIMELINES`, and the one-array timelines of schemas 3 to 6 (`legacy::TIMELINES`)
/// into one record per step. A schema-1 store gets its log first, in key order. An event that no
/// log leaf names (inserted behind the log's back) has no place to go: the move is refused and
/// the store left as it was. The older migrations run after this one, on the new layout.
fn migrate_to_schema_8(txn: &dyn WriteTxn, old_schema: u64) -> Result<(), StoreError> {
    if old_schema < 2 {
        backfill_log(txn)?;
    }
    {
        let mut timelines = txn.open_table(TIMELINES)?;
        let two_parts = |k: &str| -> Result<(String, String), StoreError> {
            let mut parts = k.split(SEP);
            match (parts.next(), parts.next(), parts.next()) {
                (Some(j), Some(s), None) => Ok((j.to_owned(), s.to_owned())),
                _ => Err(undecodable(k)),
            }
        };
        for item in txn.open_table(legacy::TALLY_STATES)?.iter()? {
            let (k, v) = item?;
            let (j, s) = two_parts(&k)?;
            timelines.insert(&tally_state_key(&j, &s), &v)?;
        }
        for item in txn.open_table(legacy::TIMELINES)?.iter()? {
            let (k, v) = item?;
            let (j, s) = two_parts(&k)?;
            for step in decode::<Vec<StoredStepV7>>(&v)? {
                let bytes = serde_json::to_vec(&step)?;
                timelines.insert(&step_key(&j, &s, step.0), &bytes)?;
            }
        }
        let mut events = txn.open_table(EVENT_RECORDS)?;
        let mut old_events = txn.open_table(legacy::EVENTS)?;
        let mut old_contexts = txn.open_table(legacy::CONTEXTS)?;
        for item in txn.open_table(LOG_LEAVES)?.iter()? {
            let (k, v) = item?;
            let leaf = decode_leaf(&k, &v)?;
            let jur = k.split(SEP).next().unwrap_or_default();
            let name = leaf.event_name.as_str();
            if let Some(event) = old_events.remove(name)? {
                events.insert(&event_key(jur, leaf.index), &event)?;
            }
            if let Some(context) = old_contexts.remove(name)? {
                events.insert(&context_key(jur, leaf.index), &context)?;
            }
            let step = timelines
                .get(name)?
                .map(|g| decode::<StoredStepV7>(&g))
                .transpose()?;
            if let Some(step) = step {
                let bytes = with_log_index(&serde_json::to_vec(&step)?, leaf.index)?;
                timelines.insert(name, &bytes)?;
            }
        }
        if let Some((name, _)) = old_events.first()? {
            return Err(StoreError::Storage(format!(
                "the store cannot be moved to schema {SCHEMA_VERSION}: event {} is in no \
                 jurisdiction log (added behind the log's back); check it with `xueji verify` of \
                 the release that wrote it",
                name.replace(SEP, "/")
            )));
        }
    }
    for t in [
        legacy::EVENTS,
        legacy::CONTEXTS,
        legacy::TALLY_STATES,
        legacy::TIMELINES,
    ] {
        txn.clear_table(t)?;
    }
    Ok(())
}

/// Builds the timelines and school members of a store written before they existed.
fn backfill_timelines(txn: &dyn WriteTxn) -> Result<(), StoreError> {
    let events = txn.open_table(EVENT_RECORDS)?;
    let mut timelines = txn.open_table(TIMELINES)?;
    let mut members = txn.open_table(IDX_SCHOOL_MEMBERS)?;
    for item in events.iter()? {
        let (k, v) = item?;
        let Some((_, index, Logged::Event)) = parse_event_key(&k) else {
            continue;
        };
        let event: Event = decode(&v)?;
        let step = with_log_index(&encode_step(&event)?, index)?;
        timelines.insert(
            &step_key(&event.jurisdiction, &event.student, event.seq),
            &step,
        )?;
        members.insert(
            &key(&[&event.jurisdiction, &event.after.school, &event.student]),
            &[],
        )?;
    }
    Ok(())
}

/// Builds the statistics counters of a store written before they existed, from its timelines.
fn backfill_tallies(txn: &dyn WriteTxn) -> Result<(), StoreError> {
    let mut pending: HashMap<String, DatedCounts> = HashMap::new();
    each_timeline(&*txn.open_table(TIMELINES)?, None, |jur, t| {
        tally::merge_into(&mut pending, jur, &dated_changes(&t));
        Ok(())
    })?;
    tally::add_changes(
        txn,
        &mut *txn.open_table(STAT_TOTALS)?,
        &mut *txn.open_table(STAT_CHANGES)?,
        &pending,
    )
}

/// Keys the ID-number index of a store written before schema 5 as [`id_card_key`] does: its old
/// keys were the digest alone, so the index is rebuilt from the students.
fn rekey_id_cards(txn: &dyn WriteTxn, salt: &[u8; 32]) -> Result<(), StoreError> {
    txn.clear_table(IDX_ID_CARD)?;
    let mut index = txn.open_table(IDX_ID_CARD)?;
    for item in txn.open_table(STUDENTS)?.iter()? {
        let (_, v) = item?;
        let s: Student = decode(&v)?;
        if let Some(id) = &s.id_card {
            index.insert(&id_card_key(salt, id.as_str()), s.id.as_bytes())?;
        }
    }
    Ok(())
}

/// Builds the tally state of every student with more than one step from their timeline, for a
/// store written before schema 6. (A student with one step has none: see `TIMELINES`.)
fn backfill_tally_states(txn: &dyn WriteTxn) -> Result<(), StoreError> {
    let mut timelines = txn.open_table(TIMELINES)?;
    let mut states = Vec::new();
    each_timeline(&*timelines, None, |jur, t| {
        if t.steps.len() > 1 {
            states.push((
                tally_state_key(jur, &t.student),
                serde_json::to_vec(&TallyState::of(&t))?,
            ));
        }
        Ok(())
    })?;
    for (k, state) in states {
        timelines.insert(&k, &state)?;
    }
    Ok(())
}

/// Moves the identity indexes of a store written before schema 9 (`value` → student, one
/// student per value) to `value␟student` → empty, so a person's enrolments can share a value.
/// The entries are moved as they are, without reading the students, so a damaged record does
/// not stop the store from opening (`verify` names it).
fn key_identities_by_student(txn: &dyn WriteTxn) -> Result<(), StoreError> {
    for table in [IDX_NATIONAL, IDX_ID_CARD, IDX_PERSON] {
        let entries = {
            let t = txn.open_table(table)?;
            let mut entries = Vec::new();
            for item in t.iter()? {
                let (k, v) = item?;
                entries.push(key(&[&k, &String::from_utf8_lossy(&v)]));
            }
            entries
        };
        txn.clear_table(table)?;
        let mut t: Box<dyn WriteTable + '_> = txn.open_table(table)?;
        for k in entries {
            t.insert(&k, &[])?;
        }
    }
    Ok(())
}

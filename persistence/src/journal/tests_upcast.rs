//! Journals read through upcasters: records of an older schema read as
//! today's type, the switch written with the first new record, and the
//! epochs kept right through rollback and quarantine.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Backend, Epoch, Journal, JournalError, Step};
use crate::upcast::Upcasters;

const CACHE: u64 = 1 << 20;

/// The old event type: a bare amount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct V1(u32);

/// The new one: the amount and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct V2 {
    amount: u64,
    from_v1: bool,
}

fn v2(amount: u64, from_v1: bool) -> V2 {
    V2 { amount, from_v1 }
}

fn upcasters() -> Arc<Upcasters<V2>> {
    let mut upcasters = Upcasters::new();
    upcasters.add("t-v1", |old: V1| v2(u64::from(old.0), true));
    Arc::new(upcasters)
}

/// A `t-v1` journal with seqs 1..=5 in two batches, on `backend`.
fn v1_journal(dir: &std::path::Path, backend: Backend) {
    let journal = Journal::open_with(dir, "t-v1", CACHE, backend).unwrap();
    journal.append(1, &[V1(1), V1(2), V1(3)]).unwrap();
    journal.append(4, &[V1(4), V1(5)]).unwrap();
    journal.flush().unwrap();
}

fn upgraded(dir: &std::path::Path) -> Journal {
    let mut journal =
        Journal::open_upgrading(dir, "t-v2", &["t-v1"], CACHE, Backend::default()).unwrap();
    journal.set_upcasters(upcasters());
    journal
}

fn events(journal: &Journal) -> Vec<(u64, V2)> {
    journal
        .read_from::<V2>(1)
        .map(|entry| {
            let entry = entry.unwrap();
            match entry.step {
                Step::Event(event) => (entry.seq, event),
                Step::Rollback { target } => (entry.seq, v2(target, false)),
            }
        })
        .collect()
}

#[test]
fn older_records_read_as_the_new_type_and_nothing_changes_until_a_write() {
    for backend in [Backend::Segments, Backend::Sled] {
        let dir = tempfile::tempdir().unwrap();
        v1_journal(dir.path(), backend);
        {
            let journal = upgraded(dir.path());
            assert_eq!(journal.last_seq::<V2>().unwrap(), 5);
            let read = events(&journal);
            assert_eq!(read.len(), 5);
            assert_eq!(read[4], (5, v2(5, true)));
            assert_eq!(journal.current_schema(), "t-v2");
            assert!(journal.epochs().is_empty(), "{backend:?}");
        }
        // Nothing was written: the journal still opens as it was.
        let journal = Journal::open_with(dir.path(), "t-v1", CACHE, backend).unwrap();
        assert_eq!(journal.schema().unwrap(), "t-v1");
        assert_eq!(journal.last_seq::<V1>().unwrap(), 5);
    }
}

#[test]
fn the_first_new_record_switches_the_header_and_keeps_the_old_seqs_old() {
    for backend in [Backend::Segments, Backend::Sled] {
        let dir = tempfile::tempdir().unwrap();
        v1_journal(dir.path(), backend);
        {
            let journal = upgraded(dir.path());
            journal.append(6, &[v2(60, false)]).unwrap();
            journal.flush().unwrap();
            let epoch = Epoch {
                schema: "t-v1".into(),
                through: 5,
            };
            assert_eq!(journal.epochs(), [epoch]);
            assert_eq!(journal.schema().unwrap(), "t-v2");
        }
        // Reopened under the new schema, old and new records both read.
        let journal = upgraded(dir.path());
        assert_eq!(journal.epochs()[0].through, 5, "{backend:?}");
        let read = events(&journal);
        assert_eq!(read[2], (3, v2(3, true)));
        assert_eq!(read[5], (6, v2(60, false)));
        assert_eq!(journal.last_seq::<V2>().unwrap(), 6);
        drop(journal);

        // Without the upcaster: refused at open, naming the schema.
        match Journal::open_with(dir.path(), "t-v2", CACHE, backend) {
            Err(JournalError::NoUpcaster { schema, seq, .. }) => {
                assert_eq!((schema.as_str(), seq), ("t-v1", 5));
            }
            other => panic!("expected NoUpcaster, got {other:?}"),
        }
        // And the old schema no longer opens it: its new records are v2.
        match Journal::open_with(dir.path(), "t-v1", CACHE, backend) {
            Err(error @ JournalError::SchemaMismatch { .. }) => assert!(error.is_incompatible()),
            other => panic!("expected SchemaMismatch, got {other:?}"),
        }
    }
}

#[test]
fn a_schema_neither_current_nor_older_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    v1_journal(dir.path(), Backend::default());
    let error = Journal::open_upgrading(dir.path(), "t-v2", &["t-v0"], CACHE, Backend::default())
        .unwrap_err();
    assert!(
        matches!(error, JournalError::SchemaMismatch { .. }),
        "{error:?}"
    );
}

#[test]
fn a_read_without_upcasters_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    v1_journal(dir.path(), Backend::default());
    // Opened upgrading, but the reads' upcasters were never given.
    let journal =
        Journal::open_upgrading(dir.path(), "t-v2", &["t-v1"], CACHE, Backend::default()).unwrap();
    let error = journal.read_from::<V2>(1).next().unwrap().unwrap_err();
    assert!(
        matches!(error, JournalError::NoUpcaster { seq: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn a_rollback_into_an_old_batch_splits_it_in_its_own_schema() {
    let dir = tempfile::tempdir().unwrap();
    v1_journal(dir.path(), Backend::default());
    {
        let journal = upgraded(dir.path());
        // Into the first batch (seqs 1..=3): seqs 3..=5 are archived, and
        // the marker at 6 is the first new record.
        journal.rollback::<V2>(2, 6).unwrap();
        journal.append(7, &[v2(70, false)]).unwrap();
        journal.flush().unwrap();
        assert_eq!(journal.epochs()[0].through, 5);
    }
    let journal = upgraded(dir.path());
    let read = events(&journal);
    let seqs: Vec<u64> = read.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [1, 2, 6, 7]);
    assert_eq!(read[1], (2, v2(2, true)));
    let archived: Vec<u64> = journal
        .read_archive::<V2>()
        .map(|entry| match entry.unwrap().step {
            Step::Event(event) => event.amount,
            Step::Rollback { .. } => unreachable!("no marker was archived"),
        })
        .collect();
    assert_eq!(archived, [3, 4, 5]);
}

#[test]
fn a_quarantine_cuts_the_old_epoch_back_so_new_seqs_are_read_new() {
    let dir = tempfile::tempdir().unwrap();
    v1_journal(dir.path(), Backend::default());
    {
        let journal = upgraded(dir.path());
        journal.append(6, &[v2(60, false)]).unwrap();
        journal.flush().unwrap();
    }
    {
        let journal = upgraded(dir.path());
        // Seqs 4.. set aside: they will be written anew, in t-v2.
        journal.quarantine_from(4).unwrap();
        assert_eq!(journal.epochs()[0].through, 3);
        journal.append(4, &[v2(40, false)]).unwrap();
        journal.flush().unwrap();
    }
    let journal = upgraded(dir.path());
    assert_eq!(
        journal.epochs(),
        [Epoch {
            schema: "t-v1".into(),
            through: 3
        }]
    );
    let read = events(&journal);
    assert_eq!(read[2], (3, v2(3, true)));
    assert_eq!(read[3], (4, v2(40, false)));
    // Which schema the quarantined records were in is not kept: putting
    // them back is refused, not guessed.
    let (id, _, _) = journal.quarantined().unwrap()[0].clone();
    let refused = journal.plan_restore(&[id]).unwrap_err();
    assert!(
        matches!(
            refused,
            super::RestoreError::SchemaChanged { through: 3, .. }
        ),
        "{refused:?}"
    );
}

#[test]
fn a_read_only_open_reads_an_older_journal_through_the_upcasters() {
    let dir = tempfile::tempdir().unwrap();
    v1_journal(dir.path(), Backend::default());
    let mut journal = Journal::open_read_only(dir.path(), Some("t-v2"), &["t-v1"], CACHE).unwrap();
    journal.set_upcasters(upcasters());
    assert_eq!(events(&journal)[0], (1, v2(1, true)));
    // Any schema (the tool's open): the upcaster of the header's schema
    // is used when there is one.
    drop(journal);
    let mut journal = Journal::open_read_only(dir.path(), None, &[], CACHE).unwrap();
    journal.set_upcasters(upcasters());
    assert_eq!(events(&journal)[1], (2, v2(2, true)));
}

#[test]
fn damaged_epochs_are_a_bad_header() {
    let dir = tempfile::tempdir().unwrap();
    v1_journal(dir.path(), Backend::default());
    {
        let journal = upgraded(dir.path());
        journal.append(6, &[v2(60, false)]).unwrap();
        journal.flush().unwrap();
        let meta = journal.raw(super::Tree::Meta);
        let epochs = meta.get(super::schemas::EPOCHS_KEY).unwrap().unwrap();
        meta.insert(super::schemas::EPOCHS_KEY, &epochs[..epochs.len() - 1])
            .unwrap();
        journal.flush().unwrap();
    }
    let error = Journal::open_upgrading(dir.path(), "t-v2", &["t-v1"], CACHE, Backend::default())
        .unwrap_err();
    assert!(matches!(error, JournalError::BadHeader { .. }), "{error:?}");
}

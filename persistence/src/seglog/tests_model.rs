//! The model test: random batches on three trees, with syncs, compactions
//! and reopens at random points and segments so small that every few
//! frames roll over; the log must equal a `BTreeMap` model throughout.

use proptest::prelude::*;

use super::Op;
use super::tests::{Model, apply, assert_matches, open, segments};

/// One step of the model test.
#[derive(Debug, Clone)]
enum Step {
    /// One frame: (insert?, tree, key, value length) per op.
    Batch(Vec<(bool, u8, u8, usize)>),
    /// `sync()`.
    Sync,
    /// `compact()`.
    Compact,
    /// Drop the log and open it again.
    Reopen,
}

fn value_len() -> impl Strategy<Value = usize> {
    prop_oneof![12 => 0usize..10 << 10, 1 => (95usize << 10)..(105 << 10)]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let op = (prop::bool::weighted(0.7), 0u8..3, 0u8..12, value_len());
    let step = prop_oneof![
        10 => prop::collection::vec(op, 0..5).prop_map(Step::Batch),
        1 => Just(Step::Sync),
        2 => Just(Step::Compact),
        1 => Just(Step::Reopen),
    ];
    prop::collection::vec(step, 1..60)
}

/// The log's own account of its size against the files'.
fn assert_size(log: &super::SegLog, dir: &std::path::Path) {
    let files: u64 = segments(dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(log.size_on_disk(), files);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Every read equals the model after every step, and after every
    /// reopen; compaction changes no state.
    #[test]
    fn the_log_equals_a_btreemap_model_through_rollovers_compactions_and_reopens(
        steps in steps(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), 4096).log;
        let mut model = Model::new();
        for (n, step) in steps.iter().enumerate() {
            match step {
                Step::Batch(ops) => {
                    let keys: Vec<[u8; 2]> = ops.iter().map(|(_, _, key, _)| [b'k', *key]).collect();
                    let values: Vec<Vec<u8>> = ops
                        .iter()
                        .map(|(_, _, key, len)| vec![(n as u8).wrapping_add(*key); *len])
                        .collect();
                    let batch: Vec<Op<'_>> = ops
                        .iter()
                        .zip(keys.iter().zip(&values))
                        .map(|((insert, tree, _, _), (key, value))| {
                            if *insert {
                                Op::Insert { tree: *tree, key, value }
                            } else {
                                Op::Remove { tree: *tree, key }
                            }
                        })
                        .collect();
                    apply(&log, &mut model, &batch);
                }
                Step::Sync => log.sync().unwrap(),
                Step::Compact => {
                    log.compact().unwrap();
                }
                Step::Reopen => {
                    drop(log);
                    let opened = open(dir.path(), 4096);
                    prop_assert!(opened.tail.is_none(), "{:?}", opened.tail);
                    log = opened.log;
                }
            }
            assert_matches(&log, &model, 3);
            assert_size(&log, dir.path());
        }
        drop(log);
        let opened = open(dir.path(), 4096);
        prop_assert!(opened.tail.is_none());
        assert_matches(&opened.log, &model, 3);
    }
}

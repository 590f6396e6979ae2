use super::*;

fn opened(seq: u64, state: &[(u64, u8)]) -> Found {
    Found::Opened(Opened {
        seq,
        state: state.iter().map(|&(k, v)| (k, vec![v])).collect(),
        recovery: String::new(),
        shutdown: None,
    })
}

fn model(state: &[(u64, u8)]) -> PcModel {
    state.iter().map(|&(k, v)| (k, vec![v])).collect()
}

/// Backups 0 and 1 returned (at seqs 5 and 9), backup 2 was in flight.
fn started() -> Started {
    Started::of(&[
        Line::BackingUp(0),
        Line::BackedUp { index: 0, seq: 5 },
        Line::BackingUp(1),
        Line::BackedUp { index: 1, seq: 9 },
        Line::BackingUp(2),
    ])
}

fn states() -> BTreeMap<u64, Option<PcModel>> {
    BTreeMap::from([
        (5, Some(model(&[(1, 1)]))),
        (9, Some(model(&[(1, 2)]))),
        (11, Some(model(&[(1, 3)]))),
        (12, None),
    ])
}

#[test]
fn whole_backups_at_their_seqs_pass_and_an_absent_in_flight_one_is_fine() {
    let found = [opened(5, &[(1, 1)]), opened(9, &[(1, 2)]), Found::Absent];
    let (figures, problems) = judge(&started(), &found, &states(), true);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!((figures.reported, figures.checked, figures.lost), (2, 2, 0));
    assert_eq!((figures.in_flight, figures.in_flight_whole), (1, 0));
}

#[test]
fn a_missing_or_unopenable_or_different_reported_backup_is_lost() {
    let found = [
        Found::Empty,
        Found::Failed("no checkpoint".into()),
        Found::Empty,
    ];
    let (figures, problems) = judge(&started(), &found, &states(), true);
    assert_eq!(figures.lost, 2, "{problems:?}");
    assert!(problems[0].contains("missing"), "{problems:?}");
    assert!(problems[1].contains("does not open"), "{problems:?}");

    let found = [opened(5, &[(1, 9)]), opened(8, &[(1, 2)]), Found::Absent];
    let (figures, problems) = judge(&started(), &found, &states(), true);
    assert_eq!(figures.lost, 2, "{problems:?}");
    assert!(problems[0].contains("not the model's"), "{problems:?}");
    assert!(problems[1].contains("opened at seq 8"), "{problems:?}");
}

#[test]
fn an_in_flight_backup_with_content_must_be_whole_and_the_models_state() {
    let good = [
        opened(5, &[(1, 1)]),
        opened(9, &[(1, 2)]),
        opened(11, &[(1, 3)]),
    ];
    let (figures, problems) = judge(&started(), &good, &states(), true);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!((figures.in_flight_whole, figures.torn), (1, 0));

    let torn = [
        opened(5, &[(1, 1)]),
        opened(9, &[(1, 2)]),
        opened(11, &[(1, 1)]),
    ];
    let (figures, problems) = judge(&started(), &torn, &states(), true);
    assert_eq!((figures.torn, figures.lost, problems.len()), (1, 0, 1));

    let outside = [opened(5, &[(1, 1)]), opened(9, &[(1, 2)]), opened(40, &[])];
    let (figures, problems) = judge(&started(), &outside, &states(), true);
    assert_eq!(figures.torn, 1);
    assert!(problems[0].contains("outside the history"), "{problems:?}");
}

#[test]
fn a_backup_at_an_undetermined_seq_is_counted_unchecked_not_passed() {
    let found = [
        opened(5, &[(1, 1)]),
        opened(9, &[(1, 2)]),
        opened(12, &[(1, 7)]),
    ];
    let (figures, problems) = judge(&started(), &found, &states(), true);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        (figures.checked, figures.unchecked, figures.in_flight),
        (2, 1, 1)
    );
}

#[test]
fn destinations_are_beside_the_engine_and_named_by_the_seed() {
    let dir = Path::new("/mnt/data/engine");
    assert_eq!(
        dest(dir, 0xAB, 3),
        Path::new("/mnt/data/backup-00000000000000ab-3")
    );
    assert!(".backup-00000000000000ab-3.backup-77-0.tmp".starts_with(&temporary_prefix(0xAB)));
}

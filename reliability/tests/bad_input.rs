//! The bad-input sweep's short form: hostile records, checkpoint files and
//! damaged sled journals give typed errors or clean reads, with no panic,
//! no wrong data and a bounded heap. The long form:
//! `cargo run --release -p solostate-reliability --bin reliability -- --full --only bad_input`.

use solostate_reliability::bad_input;
use solostate_reliability::report::Mode;

#[test]
fn hostile_inputs_get_typed_errors_never_panics_or_wrong_data() {
    let section = bad_input::run(Mode::Quick).unwrap_or_else(|broken| panic!("{broken}"));
    let figure = |name: &str| {
        section
            .figures
            .iter()
            .find(|(measure, _)| measure == name)
            .map(|(_, value)| value.clone())
    };
    assert_eq!(figure("panics").as_deref(), Some("0"));
    assert_eq!(figure("wrong data accepted").as_deref(), Some("0"));
    for kind in [
        "record: random bytes",
        "record: random payload, valid frame",
        "record: damaged",
        "checkpoint: random bytes",
        "checkpoint: damaged",
        "journal: damaged through sled",
        "journal: damaged sled files",
        "journal: damaged segment files",
    ] {
        let tried = figure(&format!("inputs tried: {kind}"));
        assert!(
            tried.as_deref().is_some_and(|n| n != "0"),
            "{kind}: {tried:?}"
        );
    }
}

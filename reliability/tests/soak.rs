//! The soak harness in its short form (`SOLOSTATE_RELIABILITY_MODE=full`
//! runs the 10M-event form): overwrites of a fixed key set with readers
//! throughout and one reader pinning an old snapshot for a phase.
//!
//! `soak::run` itself fails on a missing or out-of-order ack, a seq gap,
//! a pinned snapshot that changed or was not freed after release, and a
//! reader that saw a seq go backwards; these tests add the memory bounds
//! and that every phase measured every event. Latency is reported, never
//! asserted.

use std::sync::Mutex;
use std::time::Duration;

use solostate::{Durability, StoreKind};
use solostate_reliability::memory::mib;
use solostate_reliability::report::Mode;
use solostate_reliability::soak::{self, SoakConfig, SoakOutcome};

/// RSS is the whole process's, so the two soaks must not run at once.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn assert_bounded_and_complete(outcome: &SoakOutcome) {
    for check in outcome.memory_checks() {
        assert!(
            check.holds(),
            "{}: {} > {} (one map = {}, margin {})",
            check.claim,
            mib(check.measured),
            mib(check.bound),
            mib(outcome.map_rss()),
            mib(outcome.margin())
        );
    }
    for phase in &outcome.phases {
        assert_eq!(
            phase.latency.count, outcome.config.events_per_phase,
            "{}: every acked event has a latency",
            phase.name
        );
    }
    assert!(outcome.reads > 0, "the readers loaded no snapshot");
    assert!(!outcome.samples.is_empty(), "no RSS samples");
}

#[test]
fn in_memory_soak_keeps_rss_flat_and_frees_the_pinned_snapshot() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = soak::run(&SoakConfig::for_mode(Mode::from_env(), None)).unwrap();
    assert_bounded_and_complete(&outcome);
}

#[test]
fn versioned_soak_keeps_rss_in_proportion_to_writes_while_pinned_and_frees_the_pinned_snapshot() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let config = SoakConfig {
        store: StoreKind::Versioned,
        ..SoakConfig::for_mode(Mode::from_env(), None)
    };
    let outcome = soak::run(&config).unwrap();
    assert_bounded_and_complete(&outcome);
}

#[test]
fn durable_soak_keeps_rss_flat_and_frees_the_pinned_snapshot() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let every = Some(Durability::Every(Duration::from_millis(100)));
    let outcome = soak::run(&SoakConfig::for_mode(Mode::from_env(), every)).unwrap();
    assert_bounded_and_complete(&outcome);
}

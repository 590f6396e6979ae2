//! The overload harness in its short form (`SOLOSTATE_RELIABILITY_MODE=full`
//! runs 30 s of overload): producers at about ten times what a journal
//! absorbs when every flush is delayed by a few ms (a slow disk).
//!
//! `overload::run` itself fails when `try_submit` never says `Full`, RSS
//! passes its cap, an admitted event is not acked, or the reopened state
//! lacks an acked event; this test adds what the outcome must account for.

use solostate_reliability::overload::{self, OverloadConfig};
use solostate_reliability::report::Mode;

#[test]
fn overload_pushes_back_with_bounded_memory_and_keeps_every_acked_event() {
    let outcome = overload::run(&OverloadConfig::for_mode(Mode::from_env())).unwrap();
    assert!(outcome.full > 0, "try_submit never said Full");
    assert!(
        outcome.rss_peak <= outcome.rss_cap(),
        "RSS peaked above its cap"
    );
    assert!(
        outcome.max_queue_depth <= outcome.config.channel_capacity,
        "the queue held {} commands, more than its capacity {}",
        outcome.max_queue_depth,
        outcome.config.channel_capacity
    );
    assert!(outcome.admitted > 0, "nothing was admitted");
    assert_eq!(outcome.recovered_seq, outcome.admitted);
}

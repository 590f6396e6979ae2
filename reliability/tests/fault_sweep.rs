//! The fault sweep's short form: every fault kind (failed write, failed
//! flush, full disk) at N = 1..=6, each run checking that the failed batch
//! is refused with its cause, the published state stays at the last
//! durable batch, and a reopen recovers exactly the acked events. The long
//! form (N up to 64) is `reliability --full --only fault_sweep`.

use solostate_reliability::fault_sweep::{Fault, run};

#[test]
fn failed_write_refuses_the_batch_and_keeps_the_acked_prefix() {
    for n in 1..=6 {
        run(Fault::Write, n, n % 2 == 0).unwrap();
    }
}

#[test]
fn failed_flush_refuses_the_batch_and_keeps_the_acked_prefix() {
    for n in 1..=6 {
        run(Fault::Flush, n, n % 2 == 0).unwrap();
    }
}

#[test]
fn full_disk_refuses_the_batch_with_storage_full_and_keeps_the_acked_prefix() {
    for n in 1..=6 {
        run(Fault::DiskFull, n, n % 2 == 0).unwrap();
    }
}

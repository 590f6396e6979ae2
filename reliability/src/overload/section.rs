//! The overload's section of the report.

use super::{ADJUST_EVERY, OverloadConfig, run};
use crate::memory::{delta_mib, mib};
use crate::report::{Mode, Section};
use crate::workload::{KvEvent, rate};

/// The overload harness for the report.
///
/// # Errors
///
/// A broken promise, from [`run`].
pub fn section(mode: Mode) -> Result<Section, String> {
    let o = run(&OverloadConfig::for_mode(mode))?;
    let c = &o.config;
    let mut s = Section::new(
        "Overload: the queue pushes back",
        format!(
            "Producers offering about {:.0}× what a durable engine absorbs are held back by the \
             bounded queue (`send` waits, `try_submit` says `Full`) instead of growing memory; \
             every admitted event is acked and found after reopening. The disk is slow: the \
             engine flushes every batch (`Durability::Always`) of at most {} events to a real \
             sled journal, and a fault plan (`FaultPlan::flush_delay`) sleeps {} ms before every \
             flush, so the journal absorbs at most {:.1}k events/s. {} producers call \
             `try_submit` on a schedule and drop what is `Full`, {} call `send` as fast as it \
             returns.",
            c.factor,
            c.max_batch,
            c.flush_delay.as_millis(),
            c.max_batch as f64 / c.flush_delay.as_secs_f64() / 1e3,
            c.shedding,
            c.waiting
        ),
    )
    .checked_by("reliability/tests/overload.rs")
    .checked_by("reliability/src/overload/mod.rs");
    s.figure(
        "absorbed before the overload (waiting producers alone)",
        format!("{:.0}k events/s", o.calibrated_rate / 1e3),
    );
    s.figure(
        "offered during the overload (try_submit + send)",
        format!(
            "{:.0}k events/s ({:.1}× what it absorbed; try_submit paced at {:.0}k/s on \
             average, reset every {} ms)",
            o.offered_rate() / 1e3,
            o.offered_rate() / o.absorbed_rate(),
            o.target_rate / 1e3,
            ADJUST_EVERY.as_millis()
        ),
    );
    s.figure("absorbed during the overload", rate(o.absorbed, o.elapsed));
    s.figure(
        "channel capacity / deepest queue sampled / max batch",
        format!(
            "{} / {} / {}",
            c.channel_capacity, o.max_queue_depth, c.max_batch
        ),
    );
    s.figure(
        "try_submit said Full",
        format!(
            "{} of {} ({:.1}%)",
            o.full,
            o.attempts,
            100.0 * o.full as f64 / o.attempts.max(1) as f64
        ),
    );
    s.figure(
        "send blocked for room: share of the waiting producers' time / p50 / p99 / p99.9 / max",
        format!(
            "{:.0}% / {} over {} sends",
            100.0 * o.send_blocked_share,
            o.send_wait.display(),
            o.sends
        ),
    );
    s.figure(
        "RSS empty engine / at the overload's start / peak / cap",
        format!(
            "{} / {} / {} ({} over empty) / {}",
            mib(o.rss_empty),
            mib(o.rss_before),
            mib(o.rss_peak),
            delta_mib(o.rss_peak, o.rss_empty),
            mib(o.rss_cap())
        ),
    );
    let event = std::mem::size_of::<KvEvent>();
    let unabsorbed = (o.attempts + o.sends).saturating_sub(o.absorbed);
    s.figure(
        "what an unbounded queue would have held at the end",
        format!(
            "{unabsorbed} events offered and not absorbed: at least {} at {event} bytes each \
             (the event alone; a queued command also holds its ack channel)",
            mib(unabsorbed * event as u64)
        ),
    );
    s.figure(
        "acked, then found after shutdown and reopen",
        format!(
            "all {} admitted events; recovered to seq {}",
            o.admitted, o.recovered_seq
        ),
    );
    s.figure(
        "overload length",
        format!("{:.1} s", o.elapsed.as_secs_f64()),
    );
    s.note(
        "The reopen follows a graceful shutdown, so it shows that acked events were journaled \
         and recovered, not that they survive a crash (the crash harness does that). The reopen \
         uses the same slow flush.",
    );
    let cycle_ms = c.channel_capacity as f64 / o.absorbed_rate().max(1.0) * 1e3;
    s.note(format!(
        "How the push-back falls: the waiting producers spend nearly all their time blocked in \
         `send`, but in a few long waits rather than many short ones: room comes in bursts \
         (each owner turn drains the whole queue), a sender that gets in sends many events at \
         once, and then waits. Emptying a full queue takes about {cycle_ms:.0} ms at the \
         absorbed rate; the longest waits are several times that, which on a 2-core machine \
         shared with other work includes scheduling delay. Whether flume lets `try_submit` \
         take room ahead of parked senders was not checked. Nothing is lost or reordered."
    ));
    Ok(s)
}

//! The journal's flush thread: where [`Journal::flush_async`] runs the
//! blocking flush and `fdatasync`, so that an async caller (the engine's
//! owner task, on a current-thread runtime too) never blocks its
//! runtime's thread on the disk.
//!
//! One thread per journal, started by the first async flush, so blocking-
//! only users (tools, replay) never start one. It holds nothing of the
//! journal between jobs: each job carries its own handles, and the thread
//! ends when the journal (the only sender) is dropped. The channels are
//! flume's because its receiver can be awaited on any executor; the
//! journal does not assume tokio.
//!
//! [`Journal::flush_async`]: super::Journal::flush_async

use std::io;

/// A unit of blocking work.
type Job = Box<dyn FnOnce() + Send>;

/// The sending side of a journal's flush thread.
#[derive(Debug)]
pub(super) struct FlushThread {
    jobs: flume::Sender<Job>,
}

impl FlushThread {
    /// Starts the thread, named after the journal for debuggers and
    /// profilers.
    pub(super) fn spawn() -> io::Result<FlushThread> {
        let (jobs, queue) = flume::unbounded::<Job>();
        std::thread::Builder::new()
            .name("solostate-journal-flush".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    // A panicking job (a sled bug) drops its reply sender,
                    // so its caller gets an error; the thread lives on for
                    // the next one.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })?;
        Ok(FlushThread { jobs })
    }

    /// Hands `job` to the thread now and returns the receiver of its
    /// result, which says nothing (disconnects) when the job panicked.
    /// `None` when the thread is gone.
    pub(super) fn start<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<flume::Receiver<T>> {
        let (reply, result) = flume::bounded(1);
        let job: Job = Box::new(move || {
            // The caller may have stopped waiting; nothing to tell it.
            let _ = reply.send(job());
        });
        self.jobs.send(job).ok()?;
        Some(result)
    }
}

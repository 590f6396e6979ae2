//! Progress on stderr for long work: an indicatif bar when stderr is a
//! terminal, nothing at all otherwise, so logs and pipes get only the
//! plain results.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` steps (seqs, records or checkpoints) labelled `what`,
/// hidden unless stderr is a terminal.
pub(crate) fn bar(len: u64, what: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    // The template is a constant; a bad one would be a bug seen at once.
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

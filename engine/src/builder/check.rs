//! The settings check that [`Builder::open`] runs before it touches the
//! disk or the runtime: every knob whose value cannot work is refused with
//! [`OpenError::InvalidConfig`] naming it, rather than panicking inside a
//! dependency later or quietly doing something nobody asked for.

use solostate_commands::Event;

use super::Builder;
use crate::durability::Durability;
use crate::error::OpenError;

/// sled's own floor for its page cache; below it, sled panics at open.
pub(super) const MIN_JOURNAL_CACHE_BYTES: u64 = 256;

impl<E: Event> Builder<E> {
    /// Refuses settings that cannot work; see [`Builder::open`]'s errors.
    pub(super) fn check(&self) -> Result<(), OpenError> {
        let invalid = |setting, reason| Err(OpenError::InvalidConfig { setting, reason });
        for (setting, value) in [
            ("channel_capacity", self.channel_capacity),
            ("max_batch", self.max_batch),
            ("change_capacity", self.change_capacity),
        ] {
            if value == 0 {
                return invalid(setting, "must be at least 1");
            }
        }
        if let Durability::Every(interval) = self.durability
            && interval.is_zero()
        {
            return invalid("durability", "the flush interval must be longer than zero");
        }
        if self.checkpoints.keep == 0 {
            return invalid("checkpoints", "keep at least 1 checkpoint");
        }
        if self.checkpoints.every_events == Some(0) {
            return invalid(
                "checkpoints.every_events",
                "0 would write a checkpoint after every batch; give a positive count, or use CheckpointPolicy::never()",
            );
        }
        if self.checkpoints.every_bytes == Some(0) {
            return invalid(
                "checkpoints.every_bytes",
                "0 would write a checkpoint after every batch; give a positive size, or use CheckpointPolicy::never()",
            );
        }
        if self.journal_cache_bytes < MIN_JOURNAL_CACHE_BYTES {
            return invalid(
                "journal_cache_bytes",
                "must be at least 256 bytes (sled's minimum page cache)",
            );
        }
        if self.schema.as_deref() == Some("") {
            return invalid(
                "schema",
                "an empty schema name cannot tell one event encoding from another; name it, e.g. \"accounts-v1\"",
            );
        }
        if self.upcast_twice {
            return invalid(
                "upcast_from",
                "an older schema was given two upcasters; register one per older schema",
            );
        }
        let own = self.schema.as_deref();
        if self
            .upcasters
            .schemas()
            .any(|old| old.is_empty() || Some(old) == own)
        {
            return invalid(
                "upcast_from",
                "an upcaster's schema must be an older one: not empty, and not this engine's own .schema(...)",
            );
        }
        if let Some(path) = &self.path {
            if self.schema.is_none() {
                return invalid(
                    "schema",
                    "a durable engine needs a stable schema name, e.g. .schema(\"accounts-v1\"): the event type's Rust name, the only possible default, changes when the type is renamed or moved and may change between compiler versions, which would lock the journal away",
                );
            }
            if path.as_os_str().is_empty() {
                return invalid(
                    "path",
                    "an empty path would put the journal in the current directory; pass \".\" if that is meant",
                );
            }
            if !self.initial.is_empty() {
                return invalid(
                    "initial_state",
                    "an initial state is not journaled; with a path, submit it as events",
                );
            }
        }
        Ok(())
    }
}

//! How this thread treats keys whose time has passed, as Redis 7.0's `expireIfNeeded` does
//! for each role: a master deletes them (and propagates a DEL); a replica hides them from its
//! clients but leaves them in place, because only the master's DEL may delete them; and
//! commands from the master are applied as if nothing had expired (the master decided, with
//! its own clock, that the key was alive when it sent the command).
//!
//! The rule is per thread: every executor's threads learn the role when it changes, and
//! the replica's link marks the commands it applies. It is read only on the slow path, once
//! a key's time has passed.

use std::cell::Cell;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A master: delete, count and propagate.
    Delete,
    /// A replica serving its clients: the key looks absent, but stays.
    Hide,
    /// A replica applying its master's stream: the key is alive.
    Keep,
}

thread_local! {
    static REPLICA: Cell<bool> = const { Cell::new(false) };
    static APPLYING: Cell<bool> = const { Cell::new(false) };
}

/// This thread serves a replica (`true`) or a master.
pub fn set_replica(on: bool) {
    REPLICA.with(|r| r.set(on));
}

/// Whether this thread serves a replica.
pub fn is_replica() -> bool {
    REPLICA.with(Cell::get)
}

/// Marks (or unmarks) this thread as applying the master's stream.
pub fn set_applying(on: bool) {
    APPLYING.with(|a| a.set(on));
}

/// The rule in force on this thread now.
#[cold]
pub fn rule() -> Rule {
    if APPLYING.with(Cell::get) {
        Rule::Keep
    } else if REPLICA.with(Cell::get) {
        Rule::Hide
    } else {
        Rule::Delete
    }
}

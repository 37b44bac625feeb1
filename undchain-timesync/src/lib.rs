//! `undchain-timesync`: see the crate description; filled by its issue.
//!
//! Pure crate: no sockets, clocks, files or threads. Time and randomness are
//! inputs.
#![forbid(unsafe_code)]

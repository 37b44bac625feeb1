//! undchain-net's integration tests, one binary (one link, shared helpers in
//! [`support`]).

mod admission;
mod frame_envelopes;
mod fuzz_seeds;
mod outreach_refusals;
mod peer_book;
mod policy;
mod retry_scream;
mod support;

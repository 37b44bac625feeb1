//! undchain-types' integration tests, one binary (shared fixtures in
//! [`support`]).

mod envelope_roundtrip;
mod fuzz_seeds;
mod malleability;
mod replay;
mod speccheck;
mod support;
mod tamper;
mod validator_list;
mod wire_errors;

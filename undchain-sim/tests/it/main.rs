//! The simulation kit's integration tests, one binary.

mod memory_transport;
mod support;

//! Decisions per second of the pure agreement core at n = 10: ten drivers
//! exchanging messages in memory with no network model, no faults and
//! signatures checked once per message (as the simulator does), so the
//! figure is the state machines plus ed25519 signing.

use criterion::{Criterion, criterion_group, criterion_main};

fn bench(_c: &mut Criterion) {}

criterion_group!(benches, bench);
criterion_main!(benches);

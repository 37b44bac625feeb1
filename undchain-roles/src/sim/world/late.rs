//! Validators that join after the genesis (design notes, validator story
//! item 1): their settings, and starting them while the network runs.

use undchain_types::BoundedString;
use undchain_types::msg::{Endpoint, MediumKind};

use super::World;
use crate::config::{Genesis, Joining};
use crate::sim::SimConfig;

/// The joining settings of node `i`: `None` for a genesis validator;
/// newcomers say hello to every genesis validator.
pub(super) fn joining(cfg: &SimConfig, genesis: &Genesis, i: usize) -> Option<Joining> {
    let first = cfg.validators + cfg.passive;
    let trust = *cfg.newcomers.get(i.checked_sub(first)?)?;
    Some(Joining {
        bootstrap: genesis.validators.iter().map(|v| v.key).collect(),
        trust,
        alias: format!("newcomer-{}", i - first),
        media: vec![Endpoint {
            medium: MediumKind::Quic,
            address: BoundedString::truncating(&format!("10.0.0.{i}:7100")),
        }],
    })
}

impl World {
    /// The node index of newcomer `j` (the `j`th of
    /// [`SimConfig::newcomers`]).
    pub fn newcomer(&self, j: usize) -> usize {
        self.cfg.validators + self.cfg.passive + j
    }

    /// Starts node `i` now from its disk (a newcomer's is empty): it says
    /// hello to its bootstrap list, joins the running network's time,
    /// catches up and registers. Nothing if it is up already.
    pub fn start_late(&mut self, i: usize) {
        if self.nodes[i].core.is_none() {
            self.restart(i);
        }
    }
}

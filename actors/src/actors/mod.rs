//! The actors: one per live thread (`thread/`, running its turns with `turn/`), the registry
//! that routes to them, and the persistence writer they all commit through.

pub(crate) mod env;
pub(crate) mod live_actors;
pub(crate) mod persistence;
mod reaper;
pub(crate) mod registry;
pub(crate) mod routing;
pub(crate) mod thread;
pub(crate) mod turn;

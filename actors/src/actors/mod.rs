//! The actors: one per live thread, the registry that routes to them, and the persistence
//! writer they all commit through.

pub mod persistence;
pub mod registry;
pub mod thread;
pub mod turn;

//! node-fixer: finds node-local network faults (probe → check) and fixes them one approved
//! order at a time (fix). The [`engine`] module is the entry point used by the standalone CLI
//! and by the agent.

pub mod agent;
pub mod checks;
pub mod cli;
pub mod engine;
pub mod error;
pub mod fix;
pub mod netns;
pub mod probe;
pub mod snapshot;

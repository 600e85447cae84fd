//! The standalone CLI (`node-fixer scan|fix`): flags, the commands, and their output.

pub mod args;
pub mod output;
pub mod run;

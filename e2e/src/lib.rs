//! netheal's cluster-in-a-box: test fixtures for end-to-end tests.

pub mod cluster;
pub mod container;
pub mod controlplane;
pub mod harness;
pub mod netns;
pub mod procfs;

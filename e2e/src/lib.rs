//! netheal's cluster-in-a-box: test fixtures for end-to-end tests.

pub mod apiserver;
pub mod cluster;
pub mod harness;
pub mod netns;

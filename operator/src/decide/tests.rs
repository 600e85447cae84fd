//! The decision engine's tests.

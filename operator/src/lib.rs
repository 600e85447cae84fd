//! netheal's operator: it watches the policies, the node reports, the Nodes and the Pods;
//! decides which fixes are approved under the safety limits (pure, in [`decide`]); has the
//! node-local ones applied by node-fixer through the reports' `spec.remediations`, takes the
//! cluster actions itself (in [`act`]); and records every action (in [`record`]).

pub mod act;
pub mod decide;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod status;
pub mod watch;

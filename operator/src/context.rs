//! What every reconcile shares: the client, the warm stores, the event recorder, the metrics,
//! and the leader's working state (the ledger and what was last written).

use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::watch::{Stores, Trigger};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use netheal_crds::{ActionRecord, NetworkHealthPolicyStatus, RemediationOrder};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The `reportingController` of every Event.
pub const REPORTING_CONTROLLER: &str = "netheal.io/operator";

/// The leader's working state. Cleared when leadership is lost.
#[derive(Default)]
pub struct State {
    /// Past actions and orders out; rebuilt from the API on the first pass.
    pub ledger: Option<Ledger>,
    /// Action records not yet written to their policy's status.
    pub outbox: BTreeMap<String, Vec<ActionRecord>>,
    /// The status last written per policy, with the store's resourceVersion at that time
    /// (while the store still shows that version, it has not seen the write yet).
    pub written_status: HashMap<String, (Option<String>, NetworkHealthPolicyStatus)>,
    /// The orders last written per report, likewise.
    pub written_orders: HashMap<String, (Option<String>, Vec<RemediationOrder>)>,
    /// The trigger epoch and start of the last pass.
    pub last_pass: Option<(u64, Instant)>,
}

/// Shared by every reconcile.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The warm stores.
    pub stores: Stores,
    /// Bumped by the watches.
    pub trigger: Trigger,
    /// Publishes `events.k8s.io/v1` Events.
    pub recorder: Recorder,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The leader's working state; one pass at a time.
    pub state: Mutex<State>,
    /// The periodic requeue.
    pub requeue: Duration,
}

impl Context {
    /// A context; `instance` names this replica in Events.
    pub fn new(
        client: Client,
        stores: Stores,
        trigger: Trigger,
        metrics: Arc<Metrics>,
        instance: Option<String>,
        requeue: Duration,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: REPORTING_CONTROLLER.into(),
                instance,
            },
        );
        Self {
            client,
            stores,
            trigger,
            recorder,
            metrics,
            state: Mutex::new(State::default()),
            requeue,
        }
    }

    /// Forget the leader's working state (leadership lost: the next leader rebuilds it).
    pub async fn reset(&self) {
        *self.state.lock().await = State::default();
    }
}

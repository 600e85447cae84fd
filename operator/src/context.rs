//! What every reconcile shares: the client, the warm stores, the event recorder, the metrics,
//! and the leader's working state (the ledger and what was last written).

use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::watch::{Stores, Trigger};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use netheal_crds::{ActionRecord, NetworkHealthPolicyStatus, NodeNetworkReportSpec};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, watch};

/// The default longest time one API call may take (less than the lease's duration, so that a
/// write cannot outlive the leadership it was started under by more than one call).
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(10);

/// A write that was not made.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// This replica no longer holds the lease: the write was not sent.
    #[error("{what}: not written, this replica no longer leads")]
    NotLeader {
        /// What was to be written.
        what: String,
    },
    /// The API server did not answer in time (the write may or may not have happened).
    #[error("{what}: no answer within {after:?}")]
    Timeout {
        /// What was being written.
        what: String,
        /// The timeout.
        after: Duration,
    },
    /// The API server refused or the call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being written.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

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
    /// The spec last written per report (orders and history), likewise.
    pub written_specs: HashMap<String, (Option<String>, NodeNetworkReportSpec)>,
    /// The trigger epoch and start of the last pass.
    pub last_pass: Option<(u64, Instant)>,
    /// The OpenReports API and the reports written to it.
    pub openreports: crate::openreports::Writer,
    /// The decisions kept for the next pass, and when the memo was last emptied (every
    /// [`crate::reconcile::FULL_DECISION_INTERVAL`] one pass decides everything again).
    pub memo: (crate::decide::memo::Memo, Option<Instant>),
    /// What the decisions know of each Node, read again only for the Nodes that changed.
    pub nodes: crate::model::NodeInfos,
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
    /// True while this replica holds the lease; every write checks it first.
    leading: watch::Receiver<bool>,
    /// Keeps the always-leading channel of a context without an election alive.
    _always: Option<watch::Sender<bool>>,
    /// The longest one API call may take.
    pub api_timeout: Duration,
    /// Write OpenReports `ClusterReport`s where the API server serves them.
    pub openreports: bool,
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
        let (always, leading) = watch::channel(true);
        Self {
            client,
            stores,
            trigger,
            recorder,
            metrics,
            state: Mutex::new(State::default()),
            requeue,
            leading,
            _always: Some(always),
            api_timeout: DEFAULT_API_TIMEOUT,
            openreports: false,
        }
    }

    /// Write only while `leading` says this replica holds the lease (without it, a context
    /// always leads: a single replica).
    pub fn with_leadership(mut self, leading: watch::Receiver<bool>) -> Self {
        self.leading = leading;
        self._always = None;
        self
    }

    /// Cut every API call off after `timeout`.
    pub fn with_api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }

    /// Write OpenReports `ClusterReport`s where they are served (`true`; the binary's default)
    /// or never (`false`, the default of a new context).
    pub fn with_openreports(mut self, enabled: bool) -> Self {
        self.openreports = enabled;
        self
    }

    /// True while this replica holds the lease.
    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Make one API write: refused before it is sent when this replica no longer leads, cut
    /// off after [`Self::api_timeout`].
    pub async fn write<T>(
        &self,
        what: impl Into<String>,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, WriteError> {
        let what = what.into();
        if !self.is_leading() {
            tracing::warn!(%what, "not written: this replica no longer leads");
            return Err(WriteError::NotLeader { what });
        }
        match tokio::time::timeout(self.api_timeout, call).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(source)) => Err(WriteError::Api { what, source }),
            Err(_) => Err(WriteError::Timeout {
                what,
                after: self.api_timeout,
            }),
        }
    }

    /// Forget the leader's working state (leadership lost: the next leader rebuilds it).
    pub async fn reset(&self) {
        *self.state.lock().await = State::default();
    }
}

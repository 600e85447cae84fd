//! Offload features of chosen interfaces, read through ethtool's netlink interface (generic
//! netlink family `ethtool`, kernel 5.6 and later) with the `ethtool` crate, the rust-netlink
//! project's client of that family. The crate is asynchronous: one current-thread runtime
//! lives for the read, on the probe's own thread (so its socket is in the namespace read).

use crate::snapshot::Features;
use ethtool::{EthtoolAttr, EthtoolFeatureAttr};
use futures::TryStreamExt;
use std::collections::BTreeMap;

/// Why the features of an interface could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    /// The runtime or the generic netlink socket could not be made.
    #[error("ethtool netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The kernel refused or the answer could not be decoded.
    #[error("{interface}: {message}")]
    Request {
        /// The interface.
        interface: String,
        /// The crate's error.
        message: String,
    },
}

/// The active features of each interface in `interfaces`, read in the current thread's
/// namespace.
pub fn read_features(interfaces: &[String]) -> Result<BTreeMap<String, Features>, OffloadError> {
    if interfaces.is_empty() {
        return Ok(BTreeMap::new());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(OffloadError::Socket)?;
    runtime.block_on(async {
        let (connection, handle, _) = ethtool::new_connection().map_err(OffloadError::Socket)?;
        let connection = tokio::spawn(connection);
        let mut out = BTreeMap::new();
        let mut result = Ok(());
        for interface in interfaces {
            match active_features(handle.clone(), interface).await {
                Ok(features) => {
                    out.insert(interface.clone(), features);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        connection.abort();
        result.map(|()| out)
    })
}

async fn active_features(
    mut handle: ethtool::EthtoolHandle,
    interface: &str,
) -> Result<Features, OffloadError> {
    let request_error = |e: ethtool::EthtoolError| OffloadError::Request {
        interface: interface.to_string(),
        message: e.to_string(),
    };
    let replies: Vec<_> = handle
        .feature()
        .get(Some(interface))
        .execute()
        .await
        .map_err(request_error)?
        .try_collect()
        .await
        .map_err(request_error)?;
    Ok(replies
        .iter()
        .flat_map(|reply| &reply.payload.nlas)
        .filter_map(|attr| match attr {
            EthtoolAttr::Feature(EthtoolFeatureAttr::Active(bits)) => Some(bits),
            _ => None,
        })
        .flatten()
        .filter(|bit| bit.value)
        .map(|bit| bit.name.clone())
        .collect())
}

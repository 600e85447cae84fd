//! The engine's errors: what a probe could not read, and why an order could not run. Both end
//! up as text in the API (a report's `status.errors`, a result's `message`), so their
//! `Display` says what failed and on what, in one line.

use crate::netns::NetnsError;
use std::path::PathBuf;
use std::process::ExitStatus;

/// A file under `/proc/sys` or a drop-in directory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {source}", path.display())]
pub struct FileError {
    /// `read`, `write`, `create`.
    pub op: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The system's error.
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == std::io::ErrorKind::NotFound
    }

    /// A `FileError` for `op` on `path`.
    pub fn new(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self {
            op,
            path: path.into(),
            source,
        }
    }
}

/// A probe could not read part of the node. Reported next to the findings, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A tool (`iptables-nft-save`, ...) could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The tool.
        program: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tool exited with an error.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// The tool.
        program: &'static str,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// A tool printed something that is not UTF-8.
    #[error("{program}: not UTF-8: {source}")]
    NotUtf8 {
        /// The tool.
        program: &'static str,
        /// Where the bytes went wrong.
        #[source]
        source: std::string::FromUtf8Error,
    },
    /// `nft -j list …` printed something that is not libnftables' JSON.
    #[error("nft -j list: {0}")]
    NftJson(String),
    /// Neither iptables backend could be read.
    #[error("{nft}; {legacy}")]
    NoIptables {
        /// Why the nft backend could not be read.
        nft: Box<ProbeError>,
        /// Why the legacy backend could not be read.
        legacy: Box<ProbeError>,
    },
    /// A netlink dump failed (or its socket could not be opened: `what` = `netlink`).
    #[error("{what} dump: {source}")]
    Dump {
        /// `netlink`, `link`, `address`, `neighbour`, `fdb`, `route`.
        what: &'static str,
        /// The netlink error.
        #[source]
        source: crate::probe::rtnl::RtnlError,
    },
    /// A sysctl file could not be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// The pod namespace pattern is not a valid glob.
    #[error("pod netns glob {pattern:?}: {source}")]
    PodNetnsGlob {
        /// The pattern.
        pattern: String,
        /// Why it is invalid.
        #[source]
        source: glob::PatternError,
    },
}

/// Why an approved order could not be executed. The order changes nothing then, and the
/// result says why (outcome `Failed`).
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// A parameter the action needs is not in the order.
    #[error("order parameter {0:?} is missing")]
    MissingParameter(String),
    /// A parameter has a value the action cannot use.
    #[error("order parameter {key:?}: {value:?} is not {expected}")]
    InvalidParameter {
        /// The parameter.
        key: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A parameter needed only in some cases is missing in one of them.
    #[error("order parameter {key:?} is required {when}")]
    Required {
        /// The parameter.
        key: &'static str,
        /// The case.
        when: &'static str,
    },
    /// The pod namespace the order names is not on this host.
    #[error("pod network namespace {0:?} is not on this host (any more)")]
    PodNetnsGone(String),
    /// The pod namespaces could not be listed.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

//! A real Prometheus (Debian's `prometheus` package, `/usr/bin/prometheus`) as a child process:
//! static scrape targets, a rule file, and its HTTP API. Killed, and its TSDB removed, when
//! dropped; its configuration and log stay next to the cluster's logs.

use super::process::{ChildProcess, ProcessError};
use super::wait::{Check, Timeout, wait_for};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where Debian's `prometheus` package installs the server.
pub const BINARY: &str = "/usr/bin/prometheus";

/// Something Prometheus could not do.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// The server is not installed.
    #[error(
        "{BINARY} is missing: install Debian's package `prometheus` (apt-get install prometheus)"
    )]
    Missing,
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The process could not be started.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// It did not become ready.
    #[error("prometheus did not become ready: {0}; log: {1}")]
    NotReady(Timeout, String),
    /// An HTTP API call failed.
    #[error("GET {path}: {detail}")]
    Api {
        /// The path and query.
        path: String,
        /// Why.
        detail: String,
    },
    /// A document could not be (de)serialised.
    #[error("{0}")]
    Format(String),
}

/// Fail unless the Prometheus server is installed.
pub fn require_binary() -> Result<(), PrometheusError> {
    if Path::new(BINARY).is_file() {
        Ok(())
    } else {
        Err(PrometheusError::Missing)
    }
}

/// One scrape target: its address and the labels its job gives it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` of `/metrics`.
    pub address: SocketAddr,
    /// Target labels (`node`, `pod`, …).
    pub labels: BTreeMap<String, String>,
}

/// A scrape job with static targets.
#[derive(Debug, Clone)]
pub struct ScrapeJob {
    /// `job_name` (the `job` label).
    pub name: String,
    /// Its targets.
    pub targets: Vec<Target>,
}

/// `prometheus.yml`: every job scraped and every rule evaluated each `interval`.
pub fn config_yaml(
    jobs: &[ScrapeJob],
    rule_file: &Path,
    interval: Duration,
) -> Result<String, PrometheusError> {
    let interval = format!("{}ms", interval.as_millis());
    let scrape_configs: Vec<serde_json::Value> = jobs
        .iter()
        .map(|job| {
            let static_configs: Vec<serde_json::Value> = job
                .targets
                .iter()
                .map(
                    |t| serde_json::json!({"targets": [t.address.to_string()], "labels": t.labels}),
                )
                .collect();
            serde_json::json!({
                "job_name": job.name,
                "metrics_path": "/metrics",
                "static_configs": static_configs,
            })
        })
        .collect();
    let config = serde_json::json!({
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": [rule_file.display().to_string()],
        "scrape_configs": scrape_configs,
    });
    serde_yaml::to_string(&config).map_err(|e| PrometheusError::Format(e.to_string()))
}

/// The rule file inside a `PrometheusRule` object: its `spec` (`groups: …`), as
/// `hack/check-prometheus-rules.sh` hands it to promtool.
pub fn rule_file_of(prometheus_rule: &str) -> Result<serde_yaml::Value, PrometheusError> {
    let object: serde_yaml::Value = serde_yaml::from_str(prometheus_rule)
        .map_err(|e| PrometheusError::Format(format!("the PrometheusRule: {e}")))?;
    if object.get("kind").and_then(|k| k.as_str()) != Some("PrometheusRule") {
        return Err(PrometheusError::Format(
            "not a PrometheusRule object".to_string(),
        ));
    }
    object
        .get("spec")
        .filter(|s| s.get("groups").is_some())
        .cloned()
        .ok_or_else(|| PrometheusError::Format("the PrometheusRule has no spec.groups".into()))
}

/// The addresses of the listening TCP (IPv4) sockets process `pid` holds, found in
/// `/proc/<pid>/fd` and `/proc/<pid>/net/tcp`: where a process started with `--listen
/// 127.0.0.1:0` serves, once it has bound. Empty when the process is gone.
pub fn listen_addresses(pid: u32) -> Vec<SocketAddr> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: BTreeSet<String> = fds
        .flatten()
        .filter_map(|fd| {
            let link = std::fs::read_link(fd.path()).ok()?;
            let link = link.to_str()?;
            Some(
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != "0A" || !inodes.contains(*inode) {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            // The kernel prints the address as the native-endian integer of its bytes.
            let ip = u32::from_str_radix(ip, 16).ok()?;
            let port = u16::from_str_radix(port, 16).ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(ip.to_ne_bytes()),
                port,
            )))
        })
        .collect()
}

/// A free port on loopback (the kernel's choice; released at once for the child to take).
fn free_port() -> Result<u16, PrometheusError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| PrometheusError::Io {
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| PrometheusError::Io {
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })
}

/// Percent-encoding of a query parameter (everything but the unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running Prometheus server.
#[derive(Debug)]
pub struct Prometheus {
    process: ChildProcess,
    address: SocketAddr,
    dir: PathBuf,
}

impl Prometheus {
    /// Write `prometheus.yml` (the `jobs`, every 1 s) and `rules.yml` (`rules`, a rule file)
    /// into `dir`, start the server on a free loopback port with its TSDB in `dir/data`, and
    /// wait until `/-/ready` answers.
    pub async fn start(
        dir: &Path,
        jobs: &[ScrapeJob],
        rules: &serde_yaml::Value,
    ) -> Result<Self, PrometheusError> {
        require_binary()?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PrometheusError::Io { path, source }
        };
        let data = dir.join("data");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).map_err(io(&data))?;
        let rule_file = dir.join("rules.yml");
        let rules_text =
            serde_yaml::to_string(rules).map_err(|e| PrometheusError::Format(e.to_string()))?;
        std::fs::write(&rule_file, rules_text).map_err(io(&rule_file))?;
        let config_file = dir.join("prometheus.yml");
        let config = config_yaml(jobs, &rule_file, Duration::from_secs(1))?;
        std::fs::write(&config_file, config).map_err(io(&config_file))?;
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let args: Vec<String> = vec![
            format!("--config.file={}", config_file.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address={address}"),
            "--log.level=info".into(),
        ];
        let process = ChildProcess::spawn(
            "prometheus",
            Path::new(BINARY),
            &args,
            &[],
            &dir.join("prometheus.log"),
        )?;
        let mut prometheus = Self {
            process,
            address,
            dir: dir.to_path_buf(),
        };
        let ready = wait_for(
            &format!("prometheus on {address} to be ready"),
            Duration::from_secs(30),
            || async {
                match prometheus.get("/-/ready").await {
                    Ok((200, _)) => Check::Done(()),
                    Ok((code, body)) => Check::NotYet(format!("{code}: {body}")),
                    Err(e) => Check::NotYet(e.to_string()),
                }
            },
        )
        .await;
        if let Err(timeout) = ready {
            let tail = match prometheus.process.exited() {
                Some(status) => format!("exited ({status}):\n{}", prometheus.process.tail(20)),
                None => prometheus.process.tail(20),
            };
            return Err(PrometheusError::NotReady(timeout, tail));
        }
        Ok(prometheus)
    }

    /// Where its web server and API listen.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        self.process.log()
    }

    /// `GET path` (with its query): the status code and the body.
    pub async fn get(&self, path: &str) -> Result<(u16, String), PrometheusError> {
        let err = |detail: String| PrometheusError::Api {
            path: path.to_string(),
            detail,
        };
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(self.address).await?;
            // HTTP/1.0: no chunked encoding, the server closes when the body is complete.
            let request = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.address);
            stream.write_all(request.as_bytes()).await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        let response = tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| err("no answer within 10 s".into()))?
            .map_err(|e| err(e.to_string()))?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| err(format!("not an HTTP response: {text}")))?;
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| err(format!("no status code in {head}")))?;
        Ok((code, body.to_string()))
    }

    /// `GET /api/v1/<endpoint>?<params>`: the `data` of a successful answer.
    pub async fn api(
        &self,
        endpoint: &str,
        params: &[(&str, &str)],
    ) -> Result<serde_json::Value, PrometheusError> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let path = if query.is_empty() {
            format!("/api/v1/{endpoint}")
        } else {
            format!("/api/v1/{endpoint}?{}", query.join("&"))
        };
        let (code, body) = self.get(&path).await?;
        let doc: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| PrometheusError::Api {
                path: path.clone(),
                detail: format!("{code}: {e}: {body}"),
            })?;
        if doc["status"] != "success" {
            return Err(PrometheusError::Api {
                path,
                detail: format!("{code}: {body}"),
            });
        }
        Ok(doc["data"].clone())
    }

    /// An instant query: the result's samples (`{"metric": {…}, "value": [t, "v"]}`).
    pub async fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>, PrometheusError> {
        let data = self.api("query", &[("query", promql)]).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The label sets of the series `matcher` selects (over all the data kept).
    pub async fn series(
        &self,
        matcher: &str,
    ) -> Result<Vec<BTreeMap<String, String>>, PrometheusError> {
        let data = self.api("series", &[("match[]", matcher)]).await?;
        serde_json::from_value(data).map_err(|e| PrometheusError::Format(e.to_string()))
    }

    /// Every value of label `label` (`__name__`: every metric name).
    pub async fn label_values(&self, label: &str) -> Result<BTreeSet<String>, PrometheusError> {
        let data = self.api(&format!("label/{label}/values"), &[]).await?;
        serde_json::from_value(data).map_err(|e| PrometheusError::Format(e.to_string()))
    }

    /// The active alerts (pending and firing).
    pub async fn alerts(&self) -> Result<Vec<serde_json::Value>, PrometheusError> {
        let data = self.api("alerts", &[]).await?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }

    /// The active scrape targets.
    pub async fn targets(&self) -> Result<Vec<serde_json::Value>, PrometheusError> {
        let data = self.api("targets", &[]).await?;
        Ok(data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Every loaded rule, with its group.
    pub async fn rules(&self) -> Result<Vec<serde_json::Value>, PrometheusError> {
        let data = self.api("rules", &[]).await?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_file_is_the_spec_of_the_prometheus_rule() {
        let object = "apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: x
spec:
  groups:
    - name: g
      rules:
        - alert: A
          expr: up == 0
";
        let rules = rule_file_of(object).unwrap();
        assert_eq!(rules["groups"][0]["rules"][0]["alert"], "A");
        assert!(rule_file_of("kind: ConfigMap\nspec: {groups: []}\n").is_err());
        assert!(rule_file_of("kind: PrometheusRule\nspec: {}\n").is_err());
    }

    #[test]
    fn the_config_names_every_target_with_its_labels() {
        let jobs = [ScrapeJob {
            name: "j".into(),
            targets: vec![Target {
                address: "127.0.0.1:9".parse().unwrap(),
                labels: BTreeMap::from([("node".to_string(), "node1".to_string())]),
            }],
        }];
        let text = config_yaml(&jobs, Path::new("/r.yml"), Duration::from_secs(1)).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["global"]["scrape_interval"], "1000ms");
        assert_eq!(doc["rule_files"][0], "/r.yml");
        let config = &doc["scrape_configs"][0];
        assert_eq!(config["job_name"], "j");
        assert_eq!(config["static_configs"][0]["targets"][0], "127.0.0.1:9");
        assert_eq!(config["static_configs"][0]["labels"]["node"], "node1");
    }

    #[test]
    fn query_parameters_are_percent_encoded() {
        assert_eq!(
            encode("up{job=\"a b\"}[1m]"),
            "up%7Bjob%3D%22a%20b%22%7D%5B1m%5D"
        );
        assert_eq!(encode("match[]"), "match%5B%5D");
    }

    #[test]
    fn a_listening_socket_of_this_process_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        assert!(listen_addresses(std::process::id()).contains(&address));
        drop(listener);
        assert!(!listen_addresses(std::process::id()).contains(&address));
        assert!(listen_addresses(u32::MAX).is_empty());
    }
}

//! A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager
//! and kube-scheduler, built from the Kubernetes project's own Go modules
//! (`e2e/controlplane/`, `make controlplane`), each a child process with its log in the
//! control plane's folder. The API server authorizes with `Node,RBAC`, runs the default
//! admission chain (ValidatingAdmissionPolicy included) and issues service-account tokens;
//! the controller manager runs the controllers netheal's scenarios rely on (garbage
//! collector, DaemonSet, ReplicaSet, Deployment, disruption, service accounts and their
//! tokens, namespaces, pod GC, node lifecycle: a registered node is untainted once it reports
//! Ready, and marked unknown when its Lease heartbeats stop).
//!
//! Everything stops when the [`ControlPlane`] is dropped. A control plane left behind by a
//! test process that was killed is stopped by the next one that starts ([`reap_stale`]).

pub mod bins;
pub mod kubeconfig;
pub mod pki;

use crate::harness::process::{ChildProcess, ProcessError};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubeconfig::Credentials;
use pki::{Pki, PkiError};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The controllers kube-controller-manager runs here.
pub const CONTROLLERS: &str = "garbage-collector-controller,daemonset-controller,replicaset-controller,deployment-controller,disruption-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,namespace-controller,pod-garbage-collector-controller,validatingadmissionpolicy-status-controller,node-lifecycle-controller";

/// How long the API server may take to become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The control plane could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// The binaries are missing or could not be built.
    #[error(transparent)]
    Bins(#[from] bins::BinsError),
    /// The PKI could not be made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A process could not be started.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A component did not come up in time.
    #[error("{component} not ready after {seconds} s: {detail}\n{log}")]
    NotReady {
        /// Which component.
        component: String,
        /// How long it was given.
        seconds: u64,
        /// The last thing seen.
        detail: String,
        /// The end of its log.
        log: String,
    },
    /// The client could not be made.
    #[error("client: {0}")]
    Client(String),
    /// A file could not be written or a command not run.
    #[error("{what}: {detail}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        detail: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ControlPlaneError {
    let what = what.into();
    move |e| ControlPlaneError::Io {
        what,
        detail: e.to_string(),
    }
}

/// A running control plane. Field order is drop order: the scheduler and the controller
/// manager stop before the API server, the API server before etcd.
#[derive(Debug)]
pub struct ControlPlane {
    scheduler: Option<ChildProcess>,
    controller_manager: Option<ChildProcess>,
    apiserver: ChildProcess,
    apiserver_args: Vec<String>,
    restarts: u32,
    etcd: ChildProcess,
    dir: PathBuf,
    server: String,
    pki: Pki,
    admin_kubeconfig: PathBuf,
    bin_dir: PathBuf,
    started_in: Duration,
}

/// A free TCP port on 127.0.0.1 (bound, then released: the process that gets it binds it at
/// once).
fn free_port() -> Result<u16, ControlPlaneError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io_err("free port"))?;
    Ok(listener.local_addr().map_err(io_err("free port"))?.port())
}

/// An error when component `p` has already exited (with the end of its log).
fn exited_early(p: &mut ChildProcess) -> Result<(), ControlPlaneError> {
    match p.exited() {
        Some(status) => Err(ControlPlaneError::NotReady {
            component: p.name().to_string(),
            seconds: 0,
            detail: format!("exited ({status})"),
            log: p.tail(30),
        }),
        None => Ok(()),
    }
}

const PIDS: &str = "pids";

/// Stop what a control plane under `root/*/controlplane/` left running when the test process
/// that owned it died without dropping it (killed by a timeout): its `pids` file names the
/// owner and the children; a child is killed only while its command line still names that
/// control plane's folder (so a reused pid is never hit).
pub fn reap_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path().join("controlplane");
        let Ok(text) = std::fs::read_to_string(dir.join(PIDS)) else {
            continue;
        };
        let mut lines = text.lines();
        let owner_alive = lines
            .next()
            .and_then(|l| l.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if owner_alive {
            continue;
        }
        let marker = dir.display().to_string();
        for pid in lines.filter_map(|l| l.parse::<i32>().ok()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&marker) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                tracing::warn!(pid, dir = %marker, "stopped a control plane process left behind");
            }
        }
        let _ = std::fs::remove_file(dir.join(PIDS));
        let _ = std::fs::remove_dir_all(dir.join("etcd"));
    }
}

/// What to run besides etcd and kube-apiserver.
#[derive(Clone, Debug)]
pub struct Options {
    /// Also run kube-controller-manager ([`CONTROLLERS`]) and kube-scheduler.
    pub controllers: bool,
    /// An audit policy (YAML) for the API server; its log is `audit.log` in the folder.
    pub audit_policy: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            controllers: true,
            audit_policy: None,
        }
    }
}

/// The API server's audit log in a control plane's folder (with [`Options::audit_policy`]).
pub const AUDIT_LOG: &str = "audit.log";

impl ControlPlane {
    /// Start a control plane with its files and logs in `dir` (emptied first).
    pub async fn start(dir: &Path) -> Result<Self, ControlPlaneError> {
        Self::start_with(dir, &Options::default()).await
    }

    /// [`Self::start`] with `options`.
    pub async fn start_with(dir: &Path, options: &Options) -> Result<Self, ControlPlaneError> {
        let begin = Instant::now();
        if let Some(root) = dir.parent().and_then(Path::parent) {
            reap_stale(root);
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
        let bin_dir = tokio::task::spawn_blocking(bins::ensure)
            .await
            .map_err(|e| ControlPlaneError::Client(e.to_string()))??;
        let pki = Pki::generate(dir)?;
        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let server = format!("https://127.0.0.1:{api_port}");
        let d = |name: &str| dir.join(name).display().to_string();

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = ChildProcess::spawn(
            "etcd",
            &bin_dir.join("etcd"),
            &[
                "--name=e2e".into(),
                format!("--data-dir={}", d("etcd")),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=e2e={peer_url}"),
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
            ],
            &[],
            &dir.join("etcd.log"),
        )?;
        let mut apiserver_args: Vec<String> = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", d("certs")),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", pki.sa_pub.display()),
            format!(
                "--service-account-signing-key-file={}",
                pki.sa_key.display()
            ),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            "--event-ttl=1h".into(),
            "--v=1".into(),
        ];
        if let Some(policy) = &options.audit_policy {
            let path = dir.join("audit-policy.yaml");
            write_file(&path, policy)?;
            apiserver_args.push(format!("--audit-policy-file={}", path.display()));
            apiserver_args.push(format!("--audit-log-path={}", d(AUDIT_LOG)));
            apiserver_args.push("--audit-log-format=json".into());
        }
        let apiserver = ChildProcess::spawn(
            "kube-apiserver",
            &bin_dir.join("kube-apiserver"),
            &apiserver_args,
            &[],
            &dir.join("kube-apiserver.log"),
        )?;
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        write_file(
            &admin_kubeconfig,
            &kubeconfig::render(
                &server,
                &pki.ca_pem,
                "admin",
                &Credentials::Cert(&pki.admin),
            ),
        )?;
        let mut cp = Self {
            scheduler: None,
            controller_manager: None,
            apiserver,
            apiserver_args,
            restarts: 0,
            etcd,
            dir: dir.to_path_buf(),
            server,
            pki,
            admin_kubeconfig,
            bin_dir,
            started_in: Duration::ZERO,
        };
        cp.write_pids()?;
        cp.wait_apiserver_ready().await?;
        if !options.controllers {
            cp.started_in = begin.elapsed();
            tracing::info!(server = %cp.server, started_in = ?cp.started_in, "API server ready");
            return Ok(cp);
        }

        let kcm_cert = cp.pki.controller_manager.clone();
        cp.controller_manager = Some(cp.spawn_client_component(
            "kube-controller-manager",
            "system:kube-controller-manager",
            &kcm_cert,
            vec![
                format!("--controllers={CONTROLLERS}"),
                format!(
                    "--service-account-private-key-file={}",
                    cp.pki.sa_key.display()
                ),
                format!("--root-ca-file={}", cp.pki.ca_cert.display()),
                "--use-service-account-credentials=true".into(),
                "--concurrent-gc-syncs=5".into(),
                "--node-monitor-period=1s".into(),
            ],
        )?);
        let scheduler_cert = cp.pki.scheduler.clone();
        cp.scheduler = Some(cp.spawn_client_component(
            "kube-scheduler",
            "system:kube-scheduler",
            &scheduler_cert,
            Vec::new(),
        )?);
        cp.write_pids()?;
        cp.wait_controllers_ready().await?;
        cp.started_in = begin.elapsed();
        tracing::info!(server = %cp.server, started_in = ?cp.started_in, "control plane ready");
        Ok(cp)
    }

    /// Start `component` (the controller manager or the scheduler) as `user`, authenticated
    /// with `cert` for everything (API, delegated authentication and authorization of its own
    /// serving port), without leader election, with `extra` arguments.
    fn spawn_client_component(
        &self,
        component: &str,
        user: &str,
        cert: &pki::ClientCert,
        extra: Vec<String>,
    ) -> Result<ChildProcess, ControlPlaneError> {
        let config = self.dir.join(format!("{component}.kubeconfig"));
        write_file(
            &config,
            &kubeconfig::render(
                &self.server,
                &self.pki.ca_pem,
                user,
                &Credentials::Cert(cert),
            ),
        )?;
        let mut arguments = vec![
            format!("--kubeconfig={}", config.display()),
            format!("--authentication-kubeconfig={}", config.display()),
            format!("--authorization-kubeconfig={}", config.display()),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()?),
            format!(
                "--cert-dir={}",
                self.dir.join(format!("{component}-certs")).display()
            ),
            "--leader-elect=false".into(),
            "--v=1".into(),
        ];
        arguments.extend(extra);
        Ok(ChildProcess::spawn(
            component,
            &self.bin_dir.join(component),
            &arguments,
            &[],
            &self.dir.join(format!("{component}.log")),
        )?)
    }

    fn write_pids(&self) -> Result<(), ControlPlaneError> {
        let mut text = format!("{}\n", std::process::id());
        for p in self.processes() {
            text.push_str(&format!("{}\n", p.pid()));
        }
        write_file(&self.dir.join(PIDS), &text)
    }

    fn processes(&self) -> impl Iterator<Item = &ChildProcess> {
        [Some(&self.etcd), Some(&self.apiserver)]
            .into_iter()
            .chain([self.controller_manager.as_ref(), self.scheduler.as_ref()])
            .flatten()
    }

    async fn wait_apiserver_ready(&mut self) -> Result<(), ControlPlaneError> {
        let client = self.admin_client().await?;
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last;
        loop {
            for p in [&mut self.etcd, &mut self.apiserver] {
                exited_early(p)?;
            }
            let request = http::Request::get("/readyz").body(Vec::new());
            match request {
                Ok(r) => match client.request_text(r).await {
                    Ok(text) if text.trim() == "ok" => return Ok(()),
                    Ok(text) => last = text,
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                return Err(ControlPlaneError::NotReady {
                    component: "kube-apiserver".into(),
                    seconds: START_TIMEOUT.as_secs(),
                    detail: last,
                    log: self.apiserver.tail(30),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kill kube-apiserver (SIGKILL) and start it again with the same arguments (same port,
    /// certificates and etcd); return once it is ready, with the time it was unreachable.
    pub async fn restart_apiserver(&mut self) -> Result<Duration, ControlPlaneError> {
        let begin = Instant::now();
        self.apiserver.kill();
        self.restarts += 1;
        self.apiserver = ChildProcess::spawn(
            "kube-apiserver",
            &self.bin_dir.join("kube-apiserver"),
            &self.apiserver_args,
            &[],
            &self
                .dir
                .join(format!("kube-apiserver.restart-{}.log", self.restarts)),
        )?;
        self.write_pids()?;
        self.wait_apiserver_ready().await?;
        Ok(begin.elapsed())
    }

    /// Stop etcd (SIGSTOP: it holds its connections and answers nothing) or let it go on
    /// (SIGCONT).
    pub fn pause_etcd(&self, paused: bool) -> Result<(), ControlPlaneError> {
        let signal = if paused {
            nix::sys::signal::Signal::SIGSTOP
        } else {
            nix::sys::signal::Signal::SIGCONT
        };
        let pid = nix::unistd::Pid::from_raw(self.etcd.pid() as i32);
        nix::sys::signal::kill(pid, signal)
            .map_err(|e| ControlPlaneError::Client(format!("{signal} to etcd: {e}")))
    }

    /// The controller manager is working once the service-account controller has made the
    /// `default` ServiceAccount of namespace `default`.
    async fn wait_controllers_ready(&mut self) -> Result<(), ControlPlaneError> {
        use k8s_openapi::api::core::v1::ServiceAccount;
        let client = self.admin_client().await?;
        let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client, "default");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            for p in [self.controller_manager.as_mut(), self.scheduler.as_mut()]
                .into_iter()
                .flatten()
            {
                exited_early(p)?;
            }
            if let Ok(Some(_)) = api.get_opt("default").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = self
                    .controller_manager
                    .as_ref()
                    .map(|p| p.tail(30))
                    .unwrap_or_default();
                return Err(ControlPlaneError::NotReady {
                    component: "kube-controller-manager".into(),
                    seconds: START_TIMEOUT.as_secs(),
                    detail: "no ServiceAccount default/default".into(),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The API server's URL (`https://127.0.0.1:PORT`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The folder with the PKI, the kubeconfigs and the logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// The admin kubeconfig (`system:masters`).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// How long the start took (binaries already built).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The folder of the binaries (kubectl of the same release is there).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The log files of the components, one a line.
    pub fn log_files(&self) -> String {
        self.processes()
            .map(|p| format!("  {}: {}", p.name(), p.log().display()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Resident memory of the control plane's processes, in KiB (from `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        self.processes().map(|p| rss_kib(p.pid())).sum()
    }

    /// A client with the admin's credentials.
    pub async fn admin_client(&self) -> Result<Client, ControlPlaneError> {
        client_from_file(&self.admin_kubeconfig).await
    }

    /// Write a kubeconfig that authenticates with `token` to `path`.
    pub fn write_token_kubeconfig(
        &self,
        path: &Path,
        user: &str,
        token: &str,
    ) -> Result<(), ControlPlaneError> {
        self.write_token_kubeconfig_via(path, user, token, &self.server)
    }

    /// [`Self::write_token_kubeconfig`] with the API server reached at `server` (a relay to it
    /// on 127.0.0.1, which the serving certificate covers).
    pub fn write_token_kubeconfig_via(
        &self,
        path: &Path,
        user: &str,
        token: &str,
        server: &str,
    ) -> Result<(), ControlPlaneError> {
        write_file(
            path,
            &kubeconfig::render(server, &self.pki.ca_pem, user, &Credentials::Token(token)),
        )
    }

    /// Start a control plane for a test: folder `target/e2e-logs/<prefix><pid in hex>/`, unique
    /// per test process.
    pub async fn for_test(prefix: &str) -> Result<Self, ControlPlaneError> {
        let name = format!("{prefix}{:x}", std::process::id());
        Self::start(&crate::harness::log_dir(&name).join("controlplane")).await
    }

    /// Install netheal's CRDs (`kubectl apply -k config/crd`) and wait until they are served.
    pub fn apply_crds(&self) -> Result<(), ControlPlaneError> {
        apply_crds(&self.bin_dir, &self.admin_kubeconfig)
    }

    /// `kubectl apply` of manifest text (one or more YAML documents).
    pub fn apply_manifest(&self, yaml: &str) -> Result<(), ControlPlaneError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = self.dir.join(format!(
            "manifest-{}.yaml",
            N.fetch_add(1, Ordering::Relaxed)
        ));
        write_file(&path, yaml)?;
        self.kubectl(&["apply", "-f", &path.display().to_string()])?;
        Ok(())
    }

    /// Run this release's `kubectl` as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Result<Output, ControlPlaneError> {
        kubectl(&self.bin_dir, &self.admin_kubeconfig, args)
    }
}

/// Run `kubectl args…` from `bin_dir` with `kubeconfig`; an error carries its stderr.
pub fn kubectl(
    bin_dir: &Path,
    kubeconfig: &Path,
    args: &[&str],
) -> Result<Output, ControlPlaneError> {
    let output = Command::new(bin_dir.join("kubectl"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .map_err(io_err("run kubectl"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(ControlPlaneError::Io {
            what: format!("kubectl {}", args.join(" ")),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// `kubectl apply -k config/crd` with `kubeconfig`, then wait until both CRDs are Established.
pub fn apply_crds(bin_dir: &Path, kubeconfig: &Path) -> Result<(), ControlPlaneError> {
    let crd = crate::harness::bins::workspace_root().join("config/crd");
    let k = |args: &[&str]| kubectl(bin_dir, kubeconfig, args);
    k(&["apply", "--server-side", "-k", &crd.display().to_string()])?;
    k(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/networkhealthpolicies.netheal.io",
        "crd/nodenetworkreports.netheal.io",
    ])?;
    Ok(())
}

/// A client from a kubeconfig file.
pub async fn client_from_file(path: &Path) -> Result<Client, ControlPlaneError> {
    let kc = Kubeconfig::read_from(path)
        .map_err(|e| ControlPlaneError::Client(format!("{}: {e}", path.display())))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| ControlPlaneError::Client(e.to_string()))?;
    Client::try_from(config).map_err(|e| ControlPlaneError::Client(e.to_string()))
}

fn write_file(path: &Path, text: &str) -> Result<(), ControlPlaneError> {
    std::fs::write(path, text).map_err(io_err(format!("write {}", path.display())))
}

/// `VmRSS` of `pid` in KiB (0 when unreadable).
pub fn rss_kib(pid: u32) -> u64 {
    crate::procfs::status_kib(&pid.to_string(), "VmRSS")
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.scheduler = None;
        self.controller_manager = None;
        self.apiserver.kill();
        self.etcd.kill();
        let _ = std::fs::remove_file(self.dir.join(PIDS));
        let _ = std::fs::remove_dir_all(self.dir.join("etcd"));
    }
}

//! The certificates and keys of a control plane, made fresh for each one (rcgen, ECDSA P-256):
//! a CA that signs the API server's serving certificate and every client certificate, and the
//! service-account signing key. Nothing here runs a process.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// The PKI could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters.
    #[error("certificate {what}: {source}")]
    Certificate {
        /// Which certificate.
        what: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// A file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A client identity: certificate and key, PEM.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// The files of a control plane's PKI, all under one folder.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (`--client-ca-file`, `--root-ca-file`, the clients' trust anchor).
    pub ca_cert: PathBuf,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The API server's serving certificate (`localhost`, `127.0.0.1`).
    pub serving_cert: PathBuf,
    /// Its key.
    pub serving_key: PathBuf,
    /// The service-account signing key (private, PKCS#8).
    pub sa_key: PathBuf,
    /// Its public key.
    pub sa_pub: PathBuf,
    /// `O=system:masters`: the harness and the tests.
    pub admin: ClientCert,
    /// `CN=system:kube-controller-manager`.
    pub controller_manager: ClientCert,
    /// `CN=system:kube-scheduler`.
    pub scheduler: ClientCert,
}

fn cert_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Certificate {
        what: what.to_string(),
        source,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, PkiError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|source| PkiError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn subject(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

fn client(
    issuer: &CertifiedIssuer<'_, KeyPair>,
    common_name: &str,
    organization: Option<&str>,
) -> Result<ClientCert, PkiError> {
    let key = KeyPair::generate().map_err(cert_err(common_name))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err(common_name))?;
    params.distinguished_name = subject(common_name, organization);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params
        .signed_by(&key, issuer)
        .map_err(cert_err(common_name))?;
    Ok(ClientCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl Pki {
    /// Make a new PKI in `dir` (which must exist).
    pub fn generate(dir: &Path) -> Result<Self, PkiError> {
        let ca_key = KeyPair::generate().map_err(cert_err("ca"))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err("ca"))?;
        ca_params.distinguished_name = subject("netheal-e2e-ca", None);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(cert_err("ca"))?;
        let ca_pem = ca.pem();

        let serving_key = KeyPair::generate().map_err(cert_err("serving"))?;
        let mut serving = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default.svc".to_string(),
        ])
        .map_err(cert_err("serving"))?;
        serving.distinguished_name = subject("kube-apiserver", None);
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving
            .signed_by(&serving_key, &ca)
            .map_err(cert_err("serving"))?;

        let sa = KeyPair::generate().map_err(cert_err("service-account key"))?;
        Ok(Self {
            ca_cert: write(dir, "ca.crt", &ca_pem)?,
            serving_cert: write(dir, "apiserver.crt", &serving_cert.pem())?,
            serving_key: write(dir, "apiserver.key", &serving_key.serialize_pem())?,
            sa_key: write(dir, "sa.key", &sa.serialize_pem())?,
            sa_pub: write(dir, "sa.pub", &sa.public_key_pem())?,
            admin: client(&ca, "netheal-e2e-admin", Some("system:masters"))?,
            controller_manager: client(&ca, "system:kube-controller-manager", None)?,
            scheduler: client(&ca, "system:kube-scheduler", None)?,
            ca_pem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pki_has_every_file_and_distinct_identities() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path()).unwrap();
        for path in [
            &pki.ca_cert,
            &pki.serving_cert,
            &pki.serving_key,
            &pki.sa_key,
            &pki.sa_pub,
        ] {
            let text = std::fs::read_to_string(path).unwrap();
            assert!(text.starts_with("-----BEGIN "), "{}", path.display());
        }
        assert!(
            std::fs::read_to_string(&pki.sa_pub)
                .unwrap()
                .contains("PUBLIC KEY")
        );
        assert_ne!(pki.admin.cert_pem, pki.scheduler.cert_pem);
        assert!(pki.admin.key_pem.contains("PRIVATE KEY"));
    }
}

//! The certificates and keys of one control plane, generated fresh for every start.
//!
//! One CA signs the API server's serving certificate and the admin's client
//! certificate; the API server trusts client certificates from the same CA. The
//! service-account key pair signs and verifies service-account tokens. ECDSA P-256
//! throughout: generating it takes microseconds, an RSA key would take seconds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Names the API server answers to: the loopback address the tests use, and the names
/// and service IP (first address of `--service-cluster-ip-range`) it has inside a cluster.
const SERVING_NAMES: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "10.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// Paths of the PEM files written by [`write`].
#[derive(Debug, Clone)]
pub struct Files {
    /// The CA's key, for certificates issued later ([`Files::issue_client`]).
    pub ca_key: PathBuf,
    pub ca_cert: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub sa_public_key: PathBuf,
    pub sa_private_key: PathBuf,
}

/// Generates everything and writes it as PEM files into `dir`.
pub fn write(dir: &Path) -> Result<Files> {
    write_with(dir, &[])
}

/// [`write`], with more names (e.g. a node's address) in the API server's certificate.
pub fn write_with(dir: &Path, extra_names: &[String]) -> Result<Files> {
    let files = Files {
        ca_key: dir.join("ca.key"),
        ca_cert: dir.join("ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        sa_public_key: dir.join("sa.pub"),
        sa_private_key: dir.join("sa.key"),
    };

    let ca_key = KeyPair::generate()?;
    let ca = ca_params()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut names: Vec<String> = SERVING_NAMES.iter().map(|n| n.to_string()).collect();
    names.extend(extra_names.iter().cloned());
    let mut serving = CertificateParams::new(names)?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    // The API server maps CN to the user name and O to groups; system:masters is
    // bound to cluster-admin and bypasses RBAC, like kubeadm's admin.conf.
    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::new())?;
    admin
        .distinguished_name
        .push(DnType::CommonName, "pacer-e2e-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &issuer)?;

    let sa_key = KeyPair::generate()?;

    for (path, pem) in [
        (&files.ca_cert, ca_cert.pem()),
        (&files.ca_key, ca_key_pem),
        (&files.serving_cert, serving_cert.pem()),
        (&files.serving_key, serving_key.serialize_pem()),
        (&files.admin_cert, admin_cert.pem()),
        (&files.admin_key, admin_key.serialize_pem()),
        (&files.sa_public_key, sa_key.public_key_pem()),
        (&files.sa_private_key, sa_key.serialize_pem()),
    ] {
        std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(files)
}

impl Files {
    /// Issues a client certificate for user `cn` in groups `orgs`, signed by the CA, and
    /// writes `<stem>.crt` and `<stem>.key` into `dir`. The API server maps CN to the user
    /// and O to groups, so e.g. `system:node:NAME` in `system:nodes` is a kubelet.
    pub fn issue_client(
        &self,
        dir: &Path,
        stem: &str,
        cn: &str,
        orgs: &[&str],
    ) -> Result<(PathBuf, PathBuf)> {
        // The CA's parameters are fixed (ca_params), so its key is all that is needed to
        // sign as it: subject and key identifier come out the same.
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(&self.ca_key)?)?;
        let issuer = Issuer::new(ca_params()?, ca_key);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        for org in orgs {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *org);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer)?;
        let (cert_path, key_path) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cert_path, cert.pem())
            .with_context(|| format!("writing {}", cert_path.display()))?;
        std::fs::write(&key_path, key.serialize_pem())
            .with_context(|| format!("writing {}", key_path.display()))?;
        Ok((cert_path, key_path))
    }
}

/// The CA's certificate parameters (everything but the key).
fn ca_params() -> Result<CertificateParams> {
    let mut ca = CertificateParams::new(Vec::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "pacer-e2e-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(ca)
}

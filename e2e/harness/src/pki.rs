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
    let files = Files {
        ca_cert: dir.join("ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        sa_public_key: dir.join("sa.pub"),
        sa_private_key: dir.join("sa.key"),
    };

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "pacer-e2e-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let serving_key = KeyPair::generate()?;
    let names: Vec<String> = SERVING_NAMES.iter().map(|n| n.to_string()).collect();
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

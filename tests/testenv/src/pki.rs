//! The throwaway certificate authority and keys of one control plane.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use crate::error::{io, Result};

/// Paths of the PEM files written by [`Pki::write`].
#[derive(Clone, Debug)]
pub(crate) struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    /// Signs service-account tokens (apiserver, controller-manager); the public half
    /// verifies them.
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
    /// The kubelet's client certificate (`system:node:<node>` in `system:nodes`), so the Node
    /// authorizer lets it register and run its pods.
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
    /// What the API server shows the kubelet for `kubectl logs/exec`.
    pub kubelet_client_cert: PathBuf,
    pub kubelet_client_key: PathBuf,
}

impl Pki {
    pub(crate) fn write(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        let pki = Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            serving_cert: dir.join("serving.crt"),
            serving_key: dir.join("serving.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
            node_cert: dir.join("node.crt"),
            node_key: dir.join("node.key"),
            kubelet_client_cert: dir.join("kubelet-client.crt"),
            kubelet_client_key: dir.join("kubelet-client.key"),
        };

        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name.push(DnType::CommonName, "mailqueue-testenv CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        write(&pki.ca_cert, &ca_cert.pem())?;
        write(&pki.ca_key, &ca_key.serialize_pem())?;
        let issuer = Issuer::new(ca_params, &ca_key);

        // The API server is reached as 127.0.0.1 or the node IP and, from inside pods, by the
        // in-cluster names; its service IP is the first of the service range.
        let mut serving = leaf("kube-apiserver", None, ExtendedKeyUsagePurpose::ServerAuth)?;
        serving.subject_alt_names = Vec::new();
        for name in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            serving.subject_alt_names.push(rcgen::SanType::DnsName(name.try_into()?));
        }
        for ip in [[127, 0, 0, 1], [10, 0, 0, 1], crate::host::NODE_IP.octets()] {
            serving.subject_alt_names.push(rcgen::SanType::IpAddress(std::net::Ipv4Addr::from(ip).into()));
        }
        sign(&serving, &issuer, &pki.serving_cert, &pki.serving_key)?;

        let admin = leaf("admin", Some("system:masters"), ExtendedKeyUsagePurpose::ClientAuth)?;
        sign(&admin, &issuer, &pki.admin_cert, &pki.admin_key)?;

        let node = leaf(
            &format!("system:node:{}", crate::host::NODE_NAME),
            Some("system:nodes"),
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        sign(&node, &issuer, &pki.node_cert, &pki.node_key)?;
        let kubelet_client =
            leaf("kube-apiserver-kubelet-client", Some("system:masters"), ExtendedKeyUsagePurpose::ClientAuth)?;
        sign(&kubelet_client, &issuer, &pki.kubelet_client_cert, &pki.kubelet_client_key)?;

        let sa = KeyPair::generate()?;
        write(&pki.sa_key, &sa.serialize_pem())?;
        write(&pki.sa_pub, &sa.public_key_pem())?;
        Ok(pki)
    }
}

fn leaf(common_name: &str, organization: Option<&str>, usage: ExtendedKeyUsagePurpose) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        params.distinguished_name.push(DnType::OrganizationName, org);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![usage];
    Ok(params)
}

fn sign(params: &CertificateParams, issuer: &Issuer<'_, &KeyPair>, cert_path: &Path, key_path: &Path) -> Result<()> {
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    write(cert_path, &cert.pem())?;
    write(key_path, &key.serialize_pem())
}

fn write(path: &Path, pem: &str) -> Result<()> {
    std::fs::write(path, pem).map_err(io("write", path))
}

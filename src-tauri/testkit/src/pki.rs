//! A private CA and the certificates TLS tests need: server leaves for
//! `localhost`, client certificates, expired ones.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A private CA for TLS tests.
pub struct Pki {
    pub ca_pem: String,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

pub fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Holdline test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        ca_params,
        ca_key,
    }
}

impl Pki {
    /// The CA certificate as a PEM file, as a user would give it to the
    /// app; the file lives as long as the returned directory.
    pub fn ca_file(&self) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, &self.ca_pem).unwrap();
        (dir, path)
    }
}

/// A leaf for `localhost`, signed by the test CA; `expired` backdates it.
pub fn leaf(pki: &Pki, expired: bool) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    if expired {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(30);
        params.not_after = now - time::Duration::days(1);
    }
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&pki.ca_params, &pki.ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.der().clone(), key_der)
}

/// A leaf for `localhost` as PEM (certificate, key), for servers that read
/// files.
pub fn leaf_pem(pki: &Pki) -> (String, String) {
    let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&pki.ca_params, &pki.ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A client certificate signed by the CA, as PEM (certificate, PKCS#8
/// key, ECDSA P-256); `expired` backdates it.
pub fn client_leaf_pem(pki: &Pki, expired: bool) -> (String, String) {
    client_leaf_pem_for(pki, expired, KeyPair::generate().expect("a key pair"))
}

/// A client certificate with an RSA key made by `openssl genpkey` (PKCS#8),
/// signed by the CA, as PEM (certificate, key).
pub fn client_rsa_leaf_pem(pki: &Pki) -> (String, String) {
    let output = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl runs");
    assert!(output.status.success(), "openssl genpkey");
    let pem = String::from_utf8(output.stdout).expect("a PEM key");
    let key = KeyPair::from_pem(&pem).expect("rcgen takes the RSA key");
    client_leaf_pem_for(pki, false, key)
}

fn client_leaf_pem_for(pki: &Pki, expired: bool, key: KeyPair) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "holdline-test-client");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    if expired {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(30);
        params.not_after = now - time::Duration::days(1);
    }
    let issuer = Issuer::from_params(&pki.ca_params, &pki.ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

//! The client's own certificate, for `wss://` servers that ask for one
//! (mutual TLS): a PEM chain and key, or a PKCS#12 file and its passphrase.
//! Read at the first TLS attempt; what the server then says about it is
//! told apart in `dial`: none sent, ours rejected, ours expired.

use std::fmt;
use std::path::{Path, PathBuf};

use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::cause::ConnectError;
use crate::secret::Token;

#[derive(Clone, PartialEq, Eq)]
pub enum ClientCertificate {
    /// A PEM certificate chain (leaf first) and its private key (PKCS#8,
    /// or the older RSA and EC forms).
    Pem { certificate: PathBuf, key: PathBuf },
    /// A PKCS#12 (`.p12`, `.pfx`) file holding the key and its chain.
    Pkcs12 { file: PathBuf, passphrase: Token },
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCertificate::Pem { certificate, key } => f
                .debug_struct("Pem")
                .field("certificate", certificate)
                .field("key", key)
                .finish(),
            ClientCertificate::Pkcs12 { file, .. } => f
                .debug_struct("Pkcs12")
                .field("file", file)
                .field("passphrase", &"<redacted>")
                .finish(),
        }
    }
}

/// What is known of our certificate when a server turns it down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFacts {
    /// The leaf's subject, as the history names the certificate.
    pub subject: String,
    /// The leaf's notAfter, seconds since the Unix epoch.
    pub not_after_s: i64,
}

impl IdentityFacts {
    pub fn expired_at(&self, now_s: i64) -> bool {
        self.not_after_s < now_s
    }

    /// The notAfter as a UTC date and time.
    pub fn not_after(&self) -> String {
        time_text(self.not_after_s)
    }
}

fn time_text(seconds: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(seconds)
        .map(|time| time.to_string())
        .unwrap_or_else(|_| format!("{seconds} s after 1970"))
}

/// The certificate chain and key, ready for rustls.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub facts: IdentityFacts,
}

fn unusable(detail: String) -> ConnectError {
    ConnectError::ClientCertificate { detail }
}

impl ClientCertificate {
    pub fn load(&self) -> Result<Identity, ConnectError> {
        let (chain, key) = match self {
            ClientCertificate::Pem { certificate, key } => {
                (read_pem_chain(certificate)?, read_pem_key(key)?)
            }
            ClientCertificate::Pkcs12 { file, passphrase } => read_pkcs12(file, passphrase)?,
        };
        let leaf = chain
            .first()
            .ok_or_else(|| unusable("the client certificate file holds no certificate".into()))?;
        let facts = facts_of(leaf)?;
        Ok(Identity { chain, key, facts })
    }
}

fn read_pem_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let certificates = CertificateDer::pem_file_iter(path).map_err(|e| {
        unusable(format!(
            "cannot read the client certificate {}: {e}",
            path.display()
        ))
    })?;
    certificates
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(format!("bad certificate in {}: {e}", path.display())))
}

fn read_pem_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConnectError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        unusable(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
    })
}

type Chain = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn read_pkcs12(path: &Path, passphrase: &Token) -> Result<Chain, ConnectError> {
    let bytes = std::fs::read(path)
        .map_err(|e| unusable(format!("cannot read {}: {e}", path.display())))?;
    let store = KeyStore::from_pkcs12(&bytes, passphrase.expose(), Pkcs12ImportPolicy::Relaxed)
        .map_err(|e| {
            unusable(format!(
                "cannot open {} (a wrong passphrase, or not PKCS#12): {e}",
                path.display()
            ))
        })?;
    let (_, key_chain) = store
        .private_key_chain()
        .ok_or_else(|| unusable(format!("{} holds no private key", path.display())))?;
    let chain = key_chain
        .certs()
        .iter()
        .map(|certificate| CertificateDer::from(certificate.as_der().to_vec()))
        .collect();
    let key = PrivatePkcs8KeyDer::from(key_chain.key().as_der().to_vec());
    Ok((chain, PrivateKeyDer::Pkcs8(key)))
}

fn facts_of(leaf: &CertificateDer<'_>) -> Result<IdentityFacts, ConnectError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| unusable(format!("the client certificate cannot be read: {e}")))?;
    Ok(IdentityFacts {
        subject: parsed.subject().to_string(),
        not_after_s: parsed.validity().not_after.timestamp(),
    })
}

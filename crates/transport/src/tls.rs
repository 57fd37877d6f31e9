//! TLS configuration shared by both transports (and the SDK's HTTP client): which roots to
//! trust, or a caller-built rustls configuration, and TLS errors in words.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{Cause, CertificateProblem, TlsConfigProblem, TlsFailure, TransportError};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// Certificates to trust.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum Roots {
    /// Mozilla's roots, compiled in (webpki-roots): works everywhere, the default.
    #[default]
    WebPki,
    /// The operating system's store.
    Native,
    /// A PEM file of CA certificates (a private CA, a test server).
    CaFile(PathBuf),
}

/// TLS options of a connector.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// Trusted roots (ignored with `config`).
    pub roots: Roots,
    /// A complete rustls configuration built by the caller (client certificates, pinning…).
    pub config: Option<Arc<rustls::ClientConfig>>,
    /// The name to verify and send as SNI, when it is not the XMPP domain.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("roots", &self.roots)
            .field("custom_config", &self.config.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsOptions {
    /// Trust the CA certificates in this PEM file.
    pub fn ca_file(path: impl Into<PathBuf>) -> Self {
        Self {
            roots: Roots::CaFile(path.into()),
            ..Self::default()
        }
    }

    /// Use this rustls configuration as is.
    pub fn custom(config: Arc<rustls::ClientConfig>) -> Self {
        Self {
            config: Some(config),
            ..Self::default()
        }
    }

    /// Verify (and send as SNI) this name instead of the XMPP domain.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The rustls configuration, with these ALPN protocols.
    pub fn client_config(
        &self,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ClientConfig>, TransportError> {
        let mut config = match &self.config {
            Some(c) => (**c).clone(),
            None => {
                let mut store = RootCertStore::empty();
                match &self.roots {
                    Roots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                    Roots::Native => {
                        let found = rustls_native_certs::load_native_certs();
                        for c in found.certs {
                            // One unusable system certificate does not make the others so.
                            let _ = store.add(c);
                        }
                        if store.is_empty() {
                            return Err(TlsConfigProblem::NoSystemCertificates.into());
                        }
                    }
                    Roots::CaFile(path) => {
                        let unreadable = |e| TlsConfigProblem::CaFileUnreadable {
                            path: path.clone(),
                            error: Cause::new(e),
                        };
                        for c in CertificateDer::pem_file_iter(path).map_err(unreadable)? {
                            store.add(c.map_err(unreadable)?).map_err(|error| {
                                TlsConfigProblem::CaCertificateRefused {
                                    path: path.clone(),
                                    error,
                                }
                            })?;
                        }
                        if store.is_empty() {
                            return Err(TlsConfigProblem::NoCertificateInFile {
                                path: path.clone(),
                            }
                            .into());
                        }
                    }
                }
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(TlsConfigProblem::Rustls)?
                .with_root_certificates(store)
                .with_no_client_auth()
            }
        };
        if !alpn.is_empty() {
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        }
        Ok(Arc::new(config))
    }
}

/// rustls' verdict on a certificate, in words.
fn certificate_problem(e: &rustls::CertificateError) -> CertificateProblem {
    use rustls::CertificateError as E;
    match e {
        E::NotValidForName | E::NotValidForNameContext { .. } => CertificateProblem::WrongName,
        E::UnknownIssuer => CertificateProblem::UnknownIssuer,
        E::Expired | E::ExpiredContext { .. } => CertificateProblem::Expired,
        E::NotValidYet | E::NotValidYetContext { .. } => CertificateProblem::NotYetValid,
        E::Revoked => CertificateProblem::Revoked,
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => CertificateProblem::WrongPurpose,
        E::BadSignature => CertificateProblem::BadSignature,
        E::BadEncoding => CertificateProblem::Malformed,
        // webpki's reasons that rustls has no variant for: `OtherError` wraps webpki's own
        // error type, which is only reachable through its Debug form.
        E::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
            CertificateProblem::CaUsedAsEndEntity
        }
        other => CertificateProblem::Other(other.clone()),
    }
}

/// rustls' error, in words.
pub fn tls_failure(e: &rustls::Error) -> TlsFailure {
    match e {
        rustls::Error::InvalidCertificate(c) => {
            TlsFailure::InvalidCertificate(certificate_problem(c))
        }
        // Servers that select the certificate by SNI (Prosody) refuse an unknown name before
        // sending any: the same verdict as a certificate for the wrong name.
        rustls::Error::AlertReceived(rustls::AlertDescription::UnrecognisedName) => {
            TlsFailure::InvalidCertificate(CertificateProblem::WrongName)
        }
        other => TlsFailure::Handshake(other.clone()),
    }
}

/// Maps a TLS-layer I/O error to a typed error naming the reason.
pub fn map_tls_error(e: std::io::Error) -> TransportError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => TransportError::Tls(tls_failure(tls)),
        None => e.into(),
    }
}

/// The name to verify and send as SNI: `name` as a DNS name or IP address.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TransportError> {
    ServerName::try_from(name.to_owned())
        .map_err(|_| TlsConfigProblem::InvalidServerName(name.to_owned()).into())
}

//! A server certificate that does not verify is refused with its reason in words: here a
//! self-signed certificate made as a CA (what a quick `openssl req -x509` gives), presented
//! by a TLS server on loopback.

use std::process::Command;
use std::sync::Arc;

use groupchat_transport::{CertificateProblem, Connector, TlsFailure, TransportError};
use groupchat_transport_tcp::{Security, TcpConnector, TlsOptions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[tokio::test]
async fn a_ca_certificate_presented_as_the_servers_own_is_refused_in_words() {
    let dir = std::env::temp_dir().join(format!("groupchat-ca-as-leaf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/install-servers installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });

    let connector = TcpConnector::builder("localhost")
        .address(addr)
        .security(Security::DirectTls)
        .tls(TlsOptions::ca_file(&cert))
        .build()
        .unwrap();
    let Err(err) = connector.connect().await else {
        panic!("connected to a server whose certificate is a CA's")
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        matches!(
            &err,
            TransportError::Tls(TlsFailure::InvalidCertificate(
                CertificateProblem::CaUsedAsEndEntity
            ))
        ),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        "the server's certificate is not valid: the server presents a certificate authority's certificate as its own"
    );
}

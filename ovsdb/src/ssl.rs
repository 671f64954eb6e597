//! `ssl:` remotes as OVS opens them (ovsdb-client(1), ovn-nbctl's `-p`/`-c`/`-C`): TLS
//! with the client's private key and certificate, the peer's certificate checked against
//! the CA certificate, and no host name check (OVS's PKI names switches and controllers,
//! not hosts). OpenSSL, the library OVS itself uses, so the same PEM files work.

use std::{path::PathBuf, pin::Pin};

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// PEM files, as `ovn-nbctl --private-key --certificate --ca-cert` take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslConfig {
    pub private_key: PathBuf,
    pub certificate: PathBuf,
    pub ca_cert: PathBuf,
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Runs the TLS handshake over an open TCP stream.
pub(crate) async fn handshake(
    tcp: TcpStream,
    config: &SslConfig,
) -> std::io::Result<SslStream<TcpStream>> {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(io)?;
    builder
        .set_private_key_file(&config.private_key, SslFiletype::PEM)
        .map_err(|e| io(format!("private key {}: {e}", config.private_key.display())))?;
    builder
        .set_certificate_chain_file(&config.certificate)
        .map_err(|e| io(format!("certificate {}: {e}", config.certificate.display())))?;
    builder.check_private_key().map_err(|e| {
        io(format!(
            "the private key does not match the certificate: {e}"
        ))
    })?;
    builder
        .set_ca_file(&config.ca_cert)
        .map_err(|e| io(format!("CA certificate {}: {e}", config.ca_cert.display())))?;
    builder.set_verify(SslVerifyMode::PEER);
    let ssl = builder
        .build()
        .configure()
        .map_err(io)?
        .verify_hostname(false)
        .use_server_name_indication(false)
        .into_ssl("")
        .map_err(io)?;
    let mut stream = SslStream::new(ssl, tcp).map_err(io)?;
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| io(format!("TLS handshake: {e}")))?;
    Ok(stream)
}

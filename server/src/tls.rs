//! HTTPS for the portal: an operator's certificate, or a self-signed one made
//! on first run. Node agents pin the self-signed certificate by its SHA-256
//! fingerprint, which the portal prints at start-up.

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};

/// Installs ring as rustls' crypto provider, once per process.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Returns `(cert, key)` paths under `dir`, making a self-signed certificate
/// for `names` if none is there yet. An existing one is reused so its
/// fingerprint, which agents pin, stays the same across restarts.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> io::Result<(PathBuf, PathBuf)> {
    let cert_path = dir.join("portal-cert.pem");
    let key_path = dir.join("portal-key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(dir)?;
    let certified = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| io::Error::other(format!("making a self-signed certificate: {e}")))?;
    write_private(&key_path, certified.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, certified.cert.pem())?;
    Ok((cert_path, key_path))
}

/// Writes a file that only its owner may read.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(contents)
}

/// The SHA-256 fingerprint of the first certificate in a PEM file, as
/// colon-separated upper-case hex (the form `openssl x509 -fingerprint
/// -sha256` prints).
pub fn fingerprint(cert_pem: &[u8]) -> io::Result<String> {
    let der = CertificateDer::pem_slice_iter(cert_pem)
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no certificate in PEM file"))?
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad PEM: {e}")))?;
    let digest = Sha256::digest(der.as_ref());
    Ok(digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// curl's `sha256//…` pin of the public key in a PEM private key: the
/// base64 SHA-256 of its SubjectPublicKeyInfo. Install commands carry it so
/// curl and the agent trust a self-signed portal, and only it.
pub fn spki_pin(key_pem: &str) -> io::Result<String> {
    use base64::Engine;
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("reading the TLS key: {e}"),
        )
    })?;
    let digest = Sha256::digest(key.public_key_der());
    Ok(format!(
        "sha256//{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

pub async fn rustls_config(cert: &Path, key: &Path) -> io::Result<RustlsConfig> {
    install_crypto_provider();
    RustlsConfig::from_pem_file(cert, key).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_are_reused_with_a_stable_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string()];
        let (cert, key) = ensure_self_signed(dir.path(), &names).unwrap();
        let first = fingerprint(&std::fs::read(&cert).unwrap()).unwrap();
        assert_eq!(first.len(), 32 * 3 - 1);
        let (cert_again, _) = ensure_self_signed(dir.path(), &names).unwrap();
        let pin = spki_pin(&std::fs::read_to_string(&key).unwrap()).unwrap();
        assert!(pin.starts_with("sha256//") && pin.len() == 8 + 44, "{pin}");
        assert_eq!(
            first,
            fingerprint(&std::fs::read(cert_again).unwrap()).unwrap()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

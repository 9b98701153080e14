//! The server certificate: loaded from PEM files, checked against its key, and swapped for new
//! handshakes when the files change. Connections already open keep the certificate they began with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::ResolvesClientCert;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::SignatureScheme;

use super::TlsError;

/// The certificate rustls hands to every new handshake.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// The files as they were when last loaded (or tried): a change is what triggers a reload.
    /// Held while loading, so that reloads (polling, SIGHUP) do not interleave.
    loaded: Mutex<Stamp>,
}

/// Size, modification time and inode of both files: replacing a file by renaming another over it
/// (as Kubernetes does with secrets) changes the inode even where size and time do not change.
type Stamp = [Option<(u64, SystemTime, u64)>; 2];

fn stamp(paths: [&Path; 2]) -> Stamp {
    paths.map(|path| {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some((meta.len(), meta.modified().ok()?, inode))
    })
}

impl ReloadingCert {
    pub fn load(
        cert_path: PathBuf,
        key_path: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<ReloadingCert, TlsError> {
        let loaded = stamp([&cert_path, &key_path]);
        let key = load_certified_key(&cert_path, &key_path, &provider)?;
        tracing::info!(cert = %cert_path.display(), sha256 = %fingerprint(&key), "TLS certificate loaded");
        Ok(ReloadingCert {
            current: ArcSwap::from_pointee(key),
            loaded: Mutex::new(loaded),
            cert_path,
            key_path,
            provider,
        })
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// Loads the files again (SIGHUP). On failure the current certificate stays and the error,
    /// naming the file, is logged and returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        self.reload_locked(&mut loaded)
    }

    /// Reloads if either file changed since the last load (or attempt): a half-written pair fails
    /// once and is tried again when the other file changes too.
    pub fn reload_if_changed(&self) {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if stamp([&self.cert_path, &self.key_path]) != *loaded {
            let _ = self.reload_locked(&mut loaded);
        }
    }

    fn reload_locked(&self, loaded: &mut Stamp) -> Result<(), TlsError> {
        // Stamped before reading: a write that lands during the load is seen as a change next time.
        *loaded = stamp([&self.cert_path, &self.key_path]);
        match load_certified_key(&self.cert_path, &self.key_path, &self.provider) {
            Ok(key) => {
                tracing::info!(cert = %self.cert_path.display(), sha256 = %fingerprint(&key), "TLS certificate reloaded; new connections use it");
                self.current.store(Arc::new(key));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload failed; still serving the previous certificate");
                Err(e)
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The same certificate presented as a client's (cluster mTLS: a node dialing a peer).
impl ResolvesClientCert for ReloadingCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The SHA-256 fingerprint of the server's certificate, as `openssl x509 -fingerprint -sha256`
/// shows it (without colons), to tell in the log which certificate is served.
fn fingerprint(key: &CertifiedKey) -> String {
    key.cert
        .first()
        .map(|cert| hex::encode(Sha256::digest(cert.as_ref())))
        .unwrap_or_default()
}

/// Reads a PEM certificate chain and its private key, and checks that they belong together.
pub fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let name = |path: &Path| path.display().to_string();
    let malformed = |path: &Path, e: pem::Error| TlsError::Pem {
        path: name(path),
        message: e.to_string(),
    };
    let chain = load_certificates(cert_path)?;
    let key = match PrivateKeyDer::from_pem_slice(&read(key_path)?) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: name(key_path),
            })
        }
        Err(e) => return Err(malformed(key_path, e)),
    };
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: name(cert_path),
            key: name(key_path),
        },
        rustls::Error::InvalidCertificate(e) => TlsError::Certificate {
            path: name(cert_path),
            message: e.to_string(),
        },
        e => TlsError::Key {
            path: name(key_path),
            message: e.to_string(),
        },
    })
}

/// Reads the PEM certificates of `path` (a CA's), at least one.
pub(super) fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate for `name` with its PKCS#8 key, as PEM.
    pub(crate) fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("generate a key");
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .expect("certificate parameters")
            .self_signed(&key)
            .expect("sign the certificate");
        (cert.pem(), key.serialize_pem())
    }

    pub(crate) fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().expect("temp dir"),
            }
        }
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
        /// Replaces the file by renaming a new one over it, as deployment tools do (a new inode:
        /// two same-sized writes within one clock tick would look unchanged otherwise).
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.path(name);
            let new = self.path(&format!("{name}.new"));
            std::fs::write(&new, text).expect("write a test file");
            std::fs::rename(&new, &path).expect("replace a test file");
            path
        }
        /// Writes a new self-signed pair for `name` as cert.pem and key.pem; returns the certificate.
        fn new_pair(&self, name: &str) -> String {
            let (cert, key) = self_signed(name);
            self.write("cert.pem", &cert);
            self.write("key.pem", &key);
            cert
        }
        fn load(&self) -> Result<ReloadingCert, TlsError> {
            ReloadingCert::load(self.path("cert.pem"), self.path("key.pem"), provider())
        }
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("test PEM")
            .to_vec()
    }

    fn served(cert: &ReloadingCert) -> Vec<u8> {
        cert.current().cert[0].to_vec()
    }

    #[test]
    fn a_good_pem_pair_is_served() {
        let files = Files::new();
        let cert = files.new_pair("localhost");
        let loaded = files.load().expect("a good pair loads");
        assert_eq!(served(&loaded), der(&cert));
    }

    #[test]
    fn bad_pem_is_refused_naming_the_file() {
        let files = Files::new();
        let (cert, key) = self_signed("localhost");
        let key_path = files.write("key.pem", &key);
        let cert_path = files.path("cert.pem");
        let cases = [
            ("", "no PEM certificate"),
            ("not a certificate at all\n", "no PEM certificate"),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n", "malformed PEM"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "unusable certificate",
            ),
        ];
        for (text, expected) in cases {
            files.write("cert.pem", text);
            let error = files.load().expect_err(text).to_string();
            assert!(
                error.contains(expected) && error.contains(&*cert_path.to_string_lossy()),
                "{text:?}: {error}"
            );
        }

        files.write("cert.pem", &cert);
        files.write("key.pem", &cert);
        let error = files.load().expect_err("no key").to_string();
        assert!(
            error.contains("no PEM private key") && error.contains(&*key_path.to_string_lossy()),
            "{error}"
        );

        std::fs::remove_file(&key_path).expect("remove the key");
        let error = files.load().expect_err("missing key").to_string();
        assert!(
            error.starts_with(&format!("cannot read {}", key_path.display())),
            "{error}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let files = Files::new();
        let (cert, _) = self_signed("localhost");
        let (_, other_key) = self_signed("localhost");
        files.write("cert.pem", &cert);
        files.write("key.pem", &other_key);
        let error = files.load().expect_err("mismatched key");
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("key.pem") && text.contains("cert.pem"),
            "{text}"
        );
    }

    #[test]
    fn changed_files_are_reloaded_and_a_bad_reload_keeps_the_old_certificate() {
        let files = Files::new();
        let first_cert = files.new_pair("first.example");
        let cert = files.load().expect("first pair");

        cert.reload_if_changed();
        assert_eq!(served(&cert), der(&first_cert), "nothing changed");

        // Replaced one file at a time, as a copy does: the half-new pair does not match and is
        // refused, the complete one is taken.
        let (second_cert, second_key) = self_signed("second.example");
        files.write("cert.pem", &second_cert);
        cert.reload_if_changed();
        assert_eq!(served(&cert), der(&first_cert), "half-written pair");
        files.write("key.pem", &second_key);
        cert.reload_if_changed();
        assert_eq!(served(&cert), der(&second_cert), "the new pair");

        files.write("cert.pem", "garbage\n");
        cert.reload_if_changed();
        assert_eq!(
            served(&cert),
            der(&second_cert),
            "a bad file keeps the old one"
        );
        let error = cert.reload().expect_err("garbage").to_string();
        assert!(error.contains("cert.pem"), "{error}");
        assert_eq!(served(&cert), der(&second_cert));
    }
}

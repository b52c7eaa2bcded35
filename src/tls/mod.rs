//! TLS as Redis 7.0 configures it (`tls-*` directives), with rustls and its ring provider: the
//! server and client contexts built from the configuration, swapped whole on CONFIG SET.
//!
//! One process-wide pair of contexts, as Redis's `redis_tls_ctx`/`redis_tls_client_ctx`: a
//! new connection takes the current one (an `Arc` clone under a read lock, once per
//! connection, never per command), so a reload affects new connections only.

pub mod stream;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    ServerConfig, ServerConnection, SignatureScheme, SupportedCipherSuite,
};

use crate::config::Config;

pub use stream::{MaybeTls, TlsStream};

/// Why a TLS configuration cannot be built: each renders as the line Redis logs (tls.c).
#[derive(Debug, Clone, PartialEq)]
pub enum TlsError {
    NoCertFile,
    NoKeyFile,
    NoCa,
    Protocols,
    Certificate {
        file: String,
        why: String,
    },
    PrivateKey {
        file: String,
        why: String,
    },
    /// The key is encrypted (tls-key-file-pass): rustls's PEM stack cannot decrypt keys.
    EncryptedKey {
        file: String,
    },
    Ca(String),
    Ciphers(String),
    Ciphersuites(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::NoCertFile => f.write_str("No tls-cert-file configured!"),
            TlsError::NoKeyFile => f.write_str("No tls-key-file configured!"),
            TlsError::NoCa => f.write_str(
                "Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, \
                 tls-replication or tls-auth-clients are enabled!",
            ),
            TlsError::Protocols => f.write_str(
                "Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', \
                 'TLSv1.2' and 'TLSv1.3'.",
            ),
            TlsError::Certificate { file, why } => {
                write!(f, "Failed to load certificate: {file}: {why}")
            }
            TlsError::PrivateKey { file, why } => {
                write!(f, "Failed to load private key: {file}: {why}")
            }
            TlsError::EncryptedKey { file } => write!(
                f,
                "Failed to load private key: {file}: the key is encrypted and redcell cannot \
                 decrypt private keys (tls-key-file-pass is not supported); store it decrypted, \
                 e.g. `openssl pkey -in {file} -out plain.key`"
            ),
            TlsError::Ca(why) => write!(
                f,
                "Failed to configure CA certificate(s) file/directory: {why}"
            ),
            TlsError::Ciphers(s) => write!(f, "Failed to configure ciphers: {s}"),
            TlsError::Ciphersuites(s) => write!(f, "Failed to configure ciphersuites: {s}"),
        }
    }
}

/// The error CONFIG SET gives when a `tls-*` change cannot be applied (config.c's
/// `applyTlsCfg`); the cause goes to the log.
pub const CONFIG_SET_FAILED: &str = "Unable to update TLS configuration. Check server logs.";

/// The contexts every TLS connection is made from.
pub struct Contexts {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

static CURRENT: RwLock<Option<Arc<Contexts>>> = RwLock::new(None);

/// The contexts in force (None until TLS is configured).
pub fn current() -> Option<Arc<Contexts>> {
    CURRENT.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A server-side session for a connection accepted on the TLS port.
pub fn accept_session() -> Option<ServerConnection> {
    ServerConnection::new(current()?.server.clone()).ok()
}

/// A client-side session towards `host` (a replica's master, a cluster peer). Redis checks the
/// peer's chain against the CA but not its name, and so do we (`AnyName`).
pub fn connect_session(host: &str) -> Option<ClientConnection> {
    let name = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(host.to_string()).ok()?,
    };
    ClientConnection::new(current()?.client.clone(), name).ok()
}

/// Wraps an outbound link (to a master, to a cluster peer) in a client session and completes
/// the handshake within `limit`.
pub async fn client_handshake<S>(io: S, host: &str, limit: Duration) -> io::Result<MaybeTls<S>>
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    let session = connect_session(host).ok_or_else(|| io::Error::other("TLS is not configured"))?;
    let mut tls = TlsStream::new(io, session);
    within(limit, tls.handshake()).await?;
    Ok(MaybeTls::Client(Box::new(tls)))
}

/// Wraps an accepted link (a cluster peer's) in a server session and completes the handshake
/// within `limit`.
pub async fn server_handshake<S>(io: S, limit: Duration) -> io::Result<MaybeTls<S>>
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    let session = accept_session().ok_or_else(|| io::Error::other("TLS is not configured"))?;
    let mut tls = TlsStream::new(io, session);
    within(limit, tls.handshake()).await?;
    Ok(MaybeTls::Server(Box::new(tls)))
}

/// `work`, or a TimedOut error once `limit` has passed: a peer that stops mid-handshake must
/// not hold a link (or the retry of one) forever.
pub async fn within(
    limit: Duration,
    work: impl std::future::Future<Output = io::Result<()>>,
) -> io::Result<()> {
    futures_lite::future::or(work, async {
        glommio::timer::sleep(limit).await;
        Err(io::ErrorKind::TimedOut.into())
    })
    .await
}

/// Whether the configuration asks for TLS anywhere (Redis configures TLS only then).
pub fn wanted(c: &Config) -> bool {
    c.get_i64("tls-port") != 0 || c.get_bool("tls-replication") || c.get_bool("tls-cluster")
}

/// Builds the contexts from `c` and puts them in force, if the configuration wants TLS; on
/// failure the contexts in force stay (Redis's `tlsConfigure` is atomic too).
pub fn configure(c: &Config) -> Result<(), TlsError> {
    if !wanted(c) {
        return Ok(());
    }
    let built = build(c)?;
    *CURRENT.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(built));
    Ok(())
}

/// Whether a CONFIG SET of `name` asks for the contexts to be rebuilt.
pub fn is_tls_directive(name: &[u8]) -> bool {
    name.len() > 4 && name[..4].eq_ignore_ascii_case(b"tls-")
}

fn nonempty<'a>(c: &'a Config, name: &str) -> Option<&'a str> {
    Some(c.get(name)).filter(|v| !v.is_empty())
}

/// Builds both contexts from the configuration, checking in Redis's order.
pub fn build(c: &Config) -> Result<Contexts, TlsError> {
    let cert_file = nonempty(c, "tls-cert-file").ok_or(TlsError::NoCertFile)?;
    let key_file = nonempty(c, "tls-key-file").ok_or(TlsError::NoKeyFile)?;
    let auth = c.get("tls-auth-clients");
    let ca_file = nonempty(c, "tls-ca-cert-file");
    let ca_dir = nonempty(c, "tls-ca-cert-dir");
    if (auth != "no" || c.get_bool("tls-cluster") || c.get_bool("tls-replication"))
        && ca_file.is_none()
        && ca_dir.is_none()
    {
        return Err(TlsError::NoCa);
    }
    let versions = protocols(c.get("tls-protocols"))?;
    let provider = Arc::new(provider(c.get("tls-ciphers"), c.get("tls-ciphersuites"))?);
    let certs = load_certs(cert_file)?;
    let key = load_key(key_file, c.get("tls-key-file-pass"))?;
    let roots = Arc::new(load_roots(ca_file, ca_dir)?);

    let client_verifier = if auth == "no" || roots.is_empty() {
        WebPkiClientVerifier::no_client_auth()
    } else {
        let builder = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
        let builder = if auth == "optional" {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder.build().map_err(|e| TlsError::Ca(e.to_string()))?
    };
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|_| TlsError::Protocols)?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(|e| TlsError::PrivateKey {
            file: key_file.to_string(),
            why: e.to_string(),
        })?;
    server.ignore_client_order = c.get_bool("tls-prefer-server-ciphers");
    if c.get_bool("tls-session-caching") {
        let size = c.get_i64("tls-session-cache-size").max(1) as usize;
        server.session_storage = ServerSessionMemoryCache::new(size);
    } else {
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
    }

    // Outbound links present tls-client-cert-file when both client files are set, else the
    // server's own certificate, as Redis does.
    let (client_certs, client_key) = match (
        nonempty(c, "tls-client-cert-file"),
        nonempty(c, "tls-client-key-file"),
    ) {
        (Some(cf), Some(kf)) => (
            load_certs(cf)?,
            load_key(kf, c.get("tls-client-key-file-pass"))?,
        ),
        _ => (certs, key),
    };
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build();
    let client_builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|_| TlsError::Protocols)?;
    let client_builder = match inner {
        Ok(inner) => client_builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(inner))),
        // No CA at all (tls-auth-clients no, TLS on the client port only): outbound links are
        // not made over TLS then, so a context that trusts nothing is fine.
        Err(_) => client_builder.with_root_certificates(RootCertStore::empty()),
    };
    let client = client_builder
        .with_client_auth_cert(client_certs, client_key)
        .map_err(|e| TlsError::PrivateKey {
            file: key_file.to_string(),
            why: e.to_string(),
        })?;
    Ok(Contexts {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// `tls-protocols`: space-separated `TLSv1.2`/`TLSv1.3` (any case); empty is both. TLSv1 and
/// TLSv1.1 are valid names in Redis but rustls does not implement them: alone they are an
/// error, beside a newer version they are left out.
fn protocols(value: &str) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    if value.trim().is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut out = Vec::new();
    for token in value.split(' ').filter(|t| !t.is_empty()) {
        match token.to_ascii_lowercase().as_str() {
            "tlsv1.3" => out.push(&rustls::version::TLS13),
            "tlsv1.2" => out.push(&rustls::version::TLS12),
            "tlsv1" | "tlsv1.1" => {}
            _ => return Err(TlsError::Protocols),
        }
    }
    if out.is_empty() {
        return Err(TlsError::Protocols);
    }
    Ok(out)
}

/// OpenSSL's names of the suites the ring provider has: TLS 1.3 (`tls-ciphersuites`) and
/// TLS 1.2 (`tls-ciphers`).
fn openssl_name(suite: SupportedCipherSuite) -> &'static str {
    use rustls::CipherSuite as S;
    match suite.suite() {
        S::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        S::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        S::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "",
    }
}

/// TLS 1.3 suites OpenSSL knows and rustls does not: accepted in `tls-ciphersuites`, skipped.
const TLS13_ELSEWHERE: &[&str] = &["TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"];

/// The ring provider with the suites `tls-ciphers` (TLS 1.2, an OpenSSL cipher list) and
/// `tls-ciphersuites` (TLS 1.3, colon-separated names) allow, in their order.
///
/// `tls-ciphersuites` must name only TLS 1.3 suites (as OpenSSL's
/// `SSL_CTX_set_ciphersuites`). `tls-ciphers` is an OpenSSL cipher string: the names of our
/// six TLS 1.2 suites select those; keywords and operators (`DEFAULT`, `HIGH`, `!aNULL`,
/// `@STRENGTH`, ...) and names of suites rustls does not implement select nothing and are
/// accepted; a list that ends up selecting no suite we have is an error.
fn provider(ciphers: &str, ciphersuites: &str) -> Result<CryptoProvider, TlsError> {
    let mut p = rustls::crypto::ring::default_provider();
    let all = p.cipher_suites.clone();
    let is13 = |s: &SupportedCipherSuite| matches!(s, SupportedCipherSuite::Tls13(_));
    let mut tls13: Vec<SupportedCipherSuite> = all.iter().copied().filter(is13).collect();
    let mut tls12: Vec<SupportedCipherSuite> = all.iter().copied().filter(|s| !is13(s)).collect();
    if !ciphersuites.is_empty() {
        let mut chosen = Vec::new();
        for name in ciphersuites.split(':').filter(|n| !n.is_empty()) {
            match tls13.iter().find(|s| openssl_name(**s) == name) {
                Some(s) => chosen.push(*s),
                None if TLS13_ELSEWHERE.contains(&name) => {}
                None => return Err(TlsError::Ciphersuites(ciphersuites.to_string())),
            }
        }
        if chosen.is_empty() {
            return Err(TlsError::Ciphersuites(ciphersuites.to_string()));
        }
        tls13 = chosen;
    }
    if !ciphers.is_empty() {
        let named: Vec<SupportedCipherSuite> = ciphers
            .split([':', ' ', ','])
            .filter_map(|n| tls12.iter().copied().find(|s| openssl_name(*s) == n))
            .collect();
        let has_keyword = ciphers.split([':', ' ', ',']).any(|n| {
            n.chars()
                .next()
                .is_some_and(|c| matches!(c, '!' | '-' | '+' | '@'))
                || n.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        });
        if !named.is_empty() {
            tls12 = named;
        } else if !has_keyword {
            return Err(TlsError::Ciphers(ciphers.to_string()));
        }
    }
    p.cipher_suites = tls13.into_iter().chain(tls12).collect();
    Ok(p)
}

fn read_pem(file: &str) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| crate::config::os_error_text(&e))
}

fn load_certs(file: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |why: String| TlsError::Certificate {
        file: file.to_string(),
        why,
    };
    let pem = read_pem(file).map_err(fail)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no certificate found".into()));
    }
    Ok(certs)
}

fn load_key(file: &str, pass: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_pem(file).map_err(|why| TlsError::PrivateKey {
        file: file.to_string(),
        why,
    })?;
    // PKCS#8 `ENCRYPTED PRIVATE KEY`, or a legacy `Proc-Type: 4,ENCRYPTED` header.
    if memchr::memmem::find(&pem, b"ENCRYPTED").is_some() {
        return Err(TlsError::EncryptedKey {
            file: file.to_string(),
        });
    }
    let _ = pass; // an unencrypted key needs no passphrase (OpenSSL ignores it too)
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::PrivateKey {
        file: file.to_string(),
        why: e.to_string(),
    })
}

/// The CA certificates of `tls-ca-cert-file` and of every file in `tls-ca-cert-dir`.
fn load_roots(file: Option<&str>, dir: Option<&str>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let mut add = |pem: &[u8], strict: bool| -> Result<(), TlsError> {
        for cert in CertificateDer::pem_slice_iter(pem) {
            match cert {
                Ok(c) => {
                    if let Err(e) = roots.add(c) {
                        if strict {
                            return Err(TlsError::Ca(e.to_string()));
                        }
                    }
                }
                Err(e) if strict => return Err(TlsError::Ca(e.to_string())),
                Err(_) => {}
            }
        }
        Ok(())
    };
    if let Some(f) = file {
        let pem = read_pem(f).map_err(|why| TlsError::Ca(format!("{f}: {why}")))?;
        add(&pem, true)?;
    }
    if let Some(d) = dir {
        let entries = std::fs::read_dir(d)
            .map_err(|e| TlsError::Ca(format!("{d}: {}", crate::config::os_error_text(&e))))?;
        for entry in entries.flatten() {
            // Files that hold no certificate (hash links to them, notes) are skipped, as
            // OpenSSL's lookup only reads what it asks for.
            if let Ok(pem) = std::fs::read(entry.path()) {
                add(&pem, false)?;
            }
        }
    }
    if (file.is_some() || dir.is_some()) && roots.is_empty() {
        return Err(TlsError::Ca("no CA certificate found".into()));
    }
    Ok(roots)
}

/// Checks a peer's chain against the CA without matching its name: Redis's TLS links
/// (replica to master, cluster bus) verify the chain only.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name: a name error means the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_as_redis_names_them() {
        assert_eq!(protocols("").map(|v| v.len()), Ok(2));
        assert_eq!(protocols("TLSv1.2").map(|v| v.len()), Ok(1));
        assert_eq!(protocols("tlsv1.2 TLSv1.3").map(|v| v.len()), Ok(2));
        assert_eq!(protocols("TLSv1.1 TLSv1.2").map(|v| v.len()), Ok(1));
        assert!(protocols("TLSv1").is_err());
        assert!(protocols("SSLv3").is_err());
    }

    #[test]
    fn cipher_lists_select_suites() {
        let n = |c: &str, s: &str| provider(c, s).map(|p| p.cipher_suites.len());
        assert_eq!(n("", ""), Ok(9));
        assert_eq!(n("", "TLS_AES_128_GCM_SHA256"), Ok(7));
        assert_eq!(
            n("", "TLS_AES_128_CCM_SHA256:TLS_AES_256_GCM_SHA384"),
            Ok(7)
        );
        assert!(n("", "TLS_BOGUS").is_err());
        assert_eq!(n("ECDHE-RSA-AES128-GCM-SHA256", ""), Ok(4));
        assert_eq!(n("DEFAULT:!MEDIUM", ""), Ok(9));
        assert!(n("nonsense", "").is_err());
    }

    #[test]
    fn missing_files_are_reported_as_redis_does() {
        let mut c = Config::default();
        c.set("tls-port", &["6380".into()], true).unwrap();
        assert_eq!(build(&c).err(), Some(TlsError::NoCertFile));
        c.set("tls-cert-file", &["/nonexistent.crt".into()], true)
            .unwrap();
        assert_eq!(build(&c).err(), Some(TlsError::NoKeyFile));
        c.set("tls-key-file", &["/nonexistent.key".into()], true)
            .unwrap();
        assert_eq!(build(&c).err(), Some(TlsError::NoCa));
    }
}

//! TLS 1.3 with ed25519 raw public keys (RFC 7250) pinned on both ends,
//! as quinn endpoint configs.
//!
//! Each verifier first compares the key the peer presented with the
//! pinned ones (the server: every `[[control.clients]]` key; the client:
//! the one server key it was given), then verifies the handshake
//! signature with that key, so a peer must hold the private half. Only
//! the ED25519 signature scheme is offered or accepted.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bus_schema::control::{ALPN, fingerprint};
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::identity::{Identity, IdentityError};

/// The client keys a server accepts; ctld replaces the set when
/// `[[control.clients]]` changes, and new handshakes see it at once.
pub type AuthorizedKeys = Arc<RwLock<HashSet<[u8; 32]>>>;

/// Where a client's verifier leaves the key the server presented, so a
/// refused handshake can say which key it was (and how to pin it).
pub type ServerKeySeen = Arc<Mutex<Option<[u8; 32]>>>;

/// A connection idle this long is closed; clients keep theirs alive
/// (`watch`, `logs -f`) by sending QUIC pings more often.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a client pings an otherwise idle connection.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Errors of building a TLS config.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The key could not be encoded.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// rustls refused the config.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The config has no QUIC initial cipher suite (never expected).
    #[error("tls: no TLS 1.3 cipher suite usable for QUIC")]
    NoQuicSuite,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Our key as rustls signs with it, with its SPKI as the "certificate".
fn certified(id: &Identity, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.pkcs8_der()?));
    let signer = provider.key_provider.load_private_key(der)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(id.spki_der()?)],
        signer,
    )))
}

/// The ed25519 key in a presented raw public key, if that is what it is.
fn ed25519_of(cert: &CertificateDer<'_>) -> Result<[u8; 32], rustls::Error> {
    VerifyingKey::from_public_key_der(cert.as_ref())
        .map(|k| k.to_bytes())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}

/// A refused key, as the peer's alert and our log will say.
fn refused(what: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        std::io::Error::other(what),
    ))))
}

/// The members both verifiers share (the client's and the server's
/// verifier traits declare the same ones): TLS 1.3 only, ED25519 only,
/// raw public keys only, the signature checked with the presented key.
/// Expands inside an impl of a type with an `algorithms` field.
macro_rules! raw_key_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::Tls13RequiredForQuic,
            ))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ED25519]
        }

        fn requires_raw_public_keys(&self) -> bool {
            true
        }
    };
}

fn verify_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature_with_raw_key(
        message,
        &SubjectPublicKeyInfoDer::from(cert.as_ref()),
        dss,
        algorithms,
    )
}

/// The server's check of a client: its key must be authorized.
#[derive(Debug)]
struct ClientKeys {
    keys: AuthorizedKeys,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ClientKeys {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let key = ed25519_of(end_entity)?;
        let known = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key);
        if known {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(refused(format!(
                "client key {} is not in [[control.clients]]",
                fingerprint(&key)
            )))
        }
    }

    raw_key_signatures!();
}

/// The client's check of the server: its key must be the pinned one.
#[derive(Debug)]
struct PinnedServer {
    pinned: Option<[u8; 32]>,
    seen: ServerKeySeen,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let key = ed25519_of(end_entity)?;
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(key);
        match self.pinned {
            Some(p) if p == key => Ok(ServerCertVerified::assertion()),
            Some(p) => Err(refused(format!(
                "server key {} is not the pinned {}",
                fingerprint(&key),
                fingerprint(&p)
            ))),
            None => Err(refused(format!(
                "no server key pinned; the server presented {}",
                fingerprint(&key)
            ))),
        }
    }

    raw_key_signatures!();
}

/// ctld's endpoint config: its key, and the client keys it accepts.
/// `max_streams` bounds the calls one connection may have open at once.
pub fn server_config(
    id: &Identity,
    keys: AuthorizedKeys,
    max_streams: u32,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = provider();
    let key = certified(id, &provider)?;
    let verifier = Arc::new(ClientKeys {
        keys,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(
            rustls::server::AlwaysResolvesServerRawPublicKeys::new(key),
        ));
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|_| TlsError::NoQuicSuite)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(max_streams.into())
        .max_concurrent_uni_streams(0u8.into())
        .max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// `oxctl`'s endpoint config: its key, and the server key it pins
/// (`None`: first contact, which fails, leaving the server's key in
/// `seen` to show the operator).
pub fn client_config(
    id: &Identity,
    pinned: Option<[u8; 32]>,
    seen: ServerKeySeen,
) -> Result<quinn::ClientConfig, TlsError> {
    let provider = provider();
    let key = certified(id, &provider)?;
    let verifier = Arc::new(PinnedServer {
        pinned,
        seen,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(
            rustls::client::AlwaysResolvesClientRawPublicKeys::new(key),
        ));
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|_| TlsError::NoQuicSuite)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The ed25519 key the peer of an established connection presented.
pub fn peer_key(conn: &quinn::Connection) -> Option<[u8; 32]> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast_ref::<Vec<CertificateDer<'static>>>()?;
    ed25519_of(certs.first()?).ok()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddr};

    use super::*;

    /// A server on loopback that accepts one connection and reports the
    /// client key it saw (or the handshake error).
    async fn serve_once(
        server: &Identity,
        keys: AuthorizedKeys,
    ) -> (
        SocketAddr,
        tokio::task::JoinHandle<Result<[u8; 32], String>>,
    ) {
        let config = server_config(server, keys, 8).expect("server config");
        let ep = quinn::Endpoint::server(config, (Ipv6Addr::LOCALHOST, 0).into()).expect("bind");
        let addr = ep.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let incoming = ep.accept().await.ok_or("endpoint closed")?;
            let conn = incoming.await.map_err(|e| e.to_string())?;
            peer_key(&conn).ok_or_else(|| "no peer key".to_string())
        });
        (addr, task)
    }

    async fn connect(
        addr: SocketAddr,
        client: &Identity,
        pinned: Option<[u8; 32]>,
        seen: ServerKeySeen,
    ) -> Result<quinn::Connection, String> {
        let mut ep = quinn::Endpoint::client((Ipv6Addr::LOCALHOST, 0).into()).expect("bind");
        ep.set_default_client_config(client_config(client, pinned, seen).expect("client config"));
        ep.connect(addr, "router")
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
    }

    fn authorized(keys: &[[u8; 32]]) -> AuthorizedKeys {
        Arc::new(RwLock::new(keys.iter().copied().collect()))
    }

    #[tokio::test]
    async fn pinned_keys_on_both_ends_make_a_connection_that_knows_its_peer() {
        let (server, client) = (Identity::generate(), Identity::generate());
        let (addr, task) = serve_once(&server, authorized(&[client.public()])).await;
        let seen = ServerKeySeen::default();
        let conn = connect(addr, &client, Some(server.public()), seen.clone())
            .await
            .expect("handshake");
        assert_eq!(peer_key(&conn), Some(server.public()));
        assert_eq!(*seen.lock().expect("lock"), Some(server.public()));
        assert_eq!(task.await.expect("join"), Ok(client.public()));
    }

    #[tokio::test]
    async fn an_unknown_client_key_cannot_complete_the_handshake() {
        let (server, client) = (Identity::generate(), Identity::generate());
        let other = Identity::generate();
        let (addr, task) = serve_once(&server, authorized(&[other.public()])).await;
        let result = connect(addr, &client, Some(server.public()), Default::default()).await;
        // The client may see the handshake finish before the server's
        // alert arrives; the server never accepts it.
        if let Ok(conn) = result {
            let err = conn.closed().await;
            assert!(err.to_string().contains("certificate"), "{err}");
        }
        let err = task.await.expect("join").expect_err("refused");
        assert!(err.contains("not in [[control.clients]]"), "{err}");
    }

    #[tokio::test]
    async fn a_wrong_or_missing_pinned_server_key_is_refused_and_the_real_one_reported() {
        let (server, client) = (Identity::generate(), Identity::generate());
        let wrong = Identity::generate();
        for pinned in [Some(wrong.public()), None] {
            let (addr, _task) = serve_once(&server, authorized(&[client.public()])).await;
            let seen = ServerKeySeen::default();
            let err = connect(addr, &client, pinned, seen.clone())
                .await
                .expect_err("refused");
            assert!(err.contains(&server.fingerprint()), "{err}");
            assert_eq!(*seen.lock().expect("lock"), Some(server.public()));
        }
    }
}

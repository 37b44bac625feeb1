//! TLS 1.3 with raw public keys (RFC 7250): the node's ed25519 identity key
//! is its TLS key, with no certificates and no key conversion (DESIGN.md
//! "Validator list and connections").
//!
//! Each side presents its key as a bare SubjectPublicKeyInfo (RFC 8410:
//! the 12-byte ed25519 prefix and the 32-byte key) and signs the handshake
//! transcript with ed25519 through ed25519-dalek, the same key that signs
//! envelopes. Verification uses `verify_strict`; a key that is not canonical,
//! not on the curve, weak or with a small-order component is refused when
//! it is first read from the handshake ([`key_from_spki`]).
//!
//! No session is ever resumed and no early data is sent or taken: the
//! server keeps no session state and issues no tickets, the client stores
//! none and offers no 0-RTT. Resumption would let a connection skip the
//! handshake signature that proves the key, and 0-RTT data is replayable.
//!
//! - The connecting side ([`ExpectKey`]) accepts the server only under the
//!   key it expected (the one the validator list names for that address)
//!   and records what the server presented, so an impostor's refusal says
//!   which key it showed.
//! - The accepting side ([`AnyRawKey`]) requires a client key and accepts any
//!   valid ed25519 key: whether that key may act as a validator is decided
//!   after the handshake, from the claim the client made in ALPN
//!   ([`crate::transport::quic`]).

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{AlwaysResolvesClientRawPublicKeys, ClientConfig};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{AlwaysResolvesServerRawPublicKeys, ServerConfig};
use rustls::sign::{CertifiedKey, Signer};
use rustls::{
    DigitallySignedStruct, DistinguishedName, Error as TlsError, SignatureAlgorithm,
    SignatureScheme,
};
use undchain_types::{PublicKey, SigningKey};

/// DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410 section 4):
/// SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits) }.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// ALPN a connecting side offers to be taken for a validator.
pub const ALPN_VALIDATOR: &[u8] = b"undchain/1+validator";
/// ALPN a connecting side offers as a client or partner.
pub const ALPN_USER: &[u8] = b"undchain/1";

/// The SubjectPublicKeyInfo of `key`, as presented in the handshake.
pub fn spki_of(key: &PublicKey) -> Vec<u8> {
    let mut v = Vec::with_capacity(ED25519_SPKI_PREFIX.len() + 32);
    v.extend_from_slice(&ED25519_SPKI_PREFIX);
    v.extend_from_slice(key.as_bytes());
    v
}

/// The identity in a presented SubjectPublicKeyInfo, or why it is not one.
/// The full key check runs here (a curve point in the prime-order
/// subgroup): the handshake is where a peer's key is first met.
pub fn key_from_spki(der: &[u8]) -> Result<PublicKey, String> {
    let Some(raw) = der.strip_prefix(&ED25519_SPKI_PREFIX[..]) else {
        return Err("not an ed25519 SubjectPublicKeyInfo".into());
    };
    let bytes: [u8; 32] = raw
        .try_into()
        .map_err(|_| format!("ed25519 key of {} bytes, expected 32", raw.len()))?;
    let key = PublicKey::from_bytes(&bytes).map_err(|e| e.to_string())?;
    key.prepare().map_err(|e| e.to_string())?;
    Ok(key)
}

fn bad_cert(reason: String) -> TlsError {
    TlsError::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(KeyRefused(reason)),
    )))
}

/// The reason a raw key was refused, carried inside a rustls error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyRefused(pub String);

fn verify_ed25519(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, TlsError> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(TlsError::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ));
    }
    let key = key_from_spki(cert.as_ref()).map_err(bad_cert)?;
    let sig: [u8; 64] = dss
        .signature()
        .try_into()
        .map_err(|_| TlsError::InvalidCertificate(rustls::CertificateError::BadSignature))?;
    key.verifying_key()
        .map_err(|_| TlsError::InvalidCertificate(rustls::CertificateError::BadEncoding))?
        .verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|_| TlsError::InvalidCertificate(rustls::CertificateError::BadSignature))?;
    Ok(HandshakeSignatureValid::assertion())
}

/// The node's identity as a rustls signing key (ed25519 via ed25519-dalek).
#[derive(Debug)]
struct IdentityKey {
    key: SigningKey,
    spki: Vec<u8>,
}

#[derive(Debug)]
struct IdentitySigner(SigningKey);

impl Signer for IdentitySigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, TlsError> {
        use ed25519_dalek::Signer as _;
        Ok(self.0.dalek().sign(message).to_bytes().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

impl rustls::sign::SigningKey for IdentityKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ED25519)
            .then(|| Box::new(IdentitySigner(self.key.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ED25519
    }
}

fn certified(identity: &SigningKey) -> Arc<CertifiedKey> {
    let spki = spki_of(&identity.public());
    Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(spki.clone())],
        Arc::new(IdentityKey {
            key: identity.clone(),
            spki,
        }),
    ))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where [`ExpectKey`] records the key the server presented.
pub type PresentedKey = Arc<Mutex<Option<PublicKey>>>;

/// Client-side verifier: the server must present exactly `expected`.
#[derive(Debug)]
pub struct ExpectKey {
    expected: PublicKey,
    presented: PresentedKey,
}

impl ExpectKey {
    /// A verifier for `expected`, and the slot where it records the key the
    /// server presented.
    pub fn new(expected: PublicKey) -> (Self, PresentedKey) {
        let slot = Arc::new(Mutex::new(None));
        (
            ExpectKey {
                expected,
                presented: slot.clone(),
            },
            slot,
        )
    }
}

impl ServerCertVerifier for ExpectKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if !intermediates.is_empty() {
            return Err(bad_cert("a raw public key comes alone".into()));
        }
        let key = key_from_spki(end_entity.as_ref()).map_err(bad_cert)?;
        *self
            .presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(key);
        if key != self.expected {
            return Err(bad_cert(format!(
                "server presented key {key}, expected {}",
                self.expected
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        Err(TlsError::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_ed25519(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// Server-side verifier: a client key is required; any valid ed25519 key is
/// accepted (it is the client's or partner's identity).
#[derive(Debug)]
pub struct AnyRawKey;

impl ClientCertVerifier for AnyRawKey {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        if !intermediates.is_empty() {
            return Err(bad_cert("a raw public key comes alone".into()));
        }
        key_from_spki(end_entity.as_ref()).map_err(bad_cert)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        Err(TlsError::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_ed25519(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// The accepting side's TLS config: TLS 1.3 only, raw keys both ways, both
/// ALPNs.
pub fn server_config(identity: &SigningKey) -> Result<ServerConfig, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(AnyRawKey))
        .with_cert_resolver(Arc::new(AlwaysResolvesServerRawPublicKeys::new(certified(
            identity,
        ))));
    cfg.alpn_protocols = vec![ALPN_VALIDATOR.to_vec(), ALPN_USER.to_vec()];
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    cfg.max_early_data_size = 0;
    Ok(cfg)
}

/// The connecting side's TLS config for one connection: expects `expected`,
/// offers the ALPN of its claim; returns the slot where the presented key is
/// recorded.
pub fn client_config(
    identity: &SigningKey,
    expected: PublicKey,
    alpn: &[u8],
) -> Result<(ClientConfig, PresentedKey), TlsError> {
    let (verifier, slot) = ExpectKey::new(expected);
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(AlwaysResolvesClientRawPublicKeys::new(certified(
            identity,
        ))));
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg.resumption = rustls::client::Resumption::disabled();
    cfg.enable_early_data = false;
    Ok((cfg, slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_round_trip_and_refusals() {
        let k = SigningKey::from_seed([3; 32]).public();
        let der = spki_of(&k);
        assert_eq!(der.len(), 44);
        assert_eq!(key_from_spki(&der), Ok(k));
        assert!(key_from_spki(&der[..43]).is_err());
        let mut rsa = der.clone();
        rsa[8] = 0x71; // another OID
        assert!(key_from_spki(&rsa).is_err());
        // The identity point: weak, refused.
        let mut weak = ED25519_SPKI_PREFIX.to_vec();
        let mut id = [0u8; 32];
        id[0] = 1;
        weak.extend_from_slice(&id);
        assert!(key_from_spki(&weak).unwrap_err().contains("weak"));
        // A key with a small-order component (speccheck case 3's key,
        // "Taming the many EdDSAs"): refused, it is not one identity.
        let mixed = undchain_types::hash::from_hex32(
            "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        )
        .unwrap();
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&mixed);
        assert!(key_from_spki(&der).unwrap_err().contains("torsion"));
    }

    #[test]
    fn no_resumption_and_no_early_data_either_side() {
        let id = SigningKey::from_seed([4; 32]);
        let server = server_config(&id).unwrap();
        assert_eq!(server.send_tls13_tickets, 0);
        assert_eq!(server.max_early_data_size, 0);
        assert!(!server.session_storage.can_cache());
        assert!(!server.ticketer.enabled());
        let (client, _) = client_config(&id, id.public(), ALPN_USER).unwrap();
        assert!(!client.enable_early_data);
        assert!(format!("{:?}", client.resumption).contains("NoClientSessionStorage"));
    }
}

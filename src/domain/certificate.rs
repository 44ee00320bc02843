//! Transfer certificates (转学证明): what a server that approved a `transfer_out` gives the
//! receiving server, signed with Ed25519 (api.md v1.1, "Transfers across jurisdictions").
//!
//! The signature covers the certificate's `core` (the enrolment that ended, its history head,
//! the sending jurisdiction's log checkpoint, who issued it and when) and a digest of its
//! `person` block (national number, name, ID number, guardians, and a random nonce). The
//! receiving server records the core, the person digest and the signature in the new
//! enrolment's first event: history never holds the personal values, and `verify` can check the
//! signature again from the event alone. The nonce keeps the digest from being guessed from the
//! few values an ID number can take.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::{Date, Guardian, Level, Status};

pub const CERTIFICATE_VERSION: u32 = 1;

/// The enrolment the certificate closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifiedEnrolment {
    pub student: String,
    pub school: String,
    pub school_name: String,
    pub jurisdiction: String,
    pub level: Level,
    pub grade: u8,
    pub class: Option<String>,
    pub status: Status,
    pub entry_date: Date,
    /// The date of the enrolment's last event (the transfer out).
    pub left_on: Date,
}

/// A jurisdiction log's size and root when the certificate was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogCheckpoint {
    pub jurisdiction: String,
    pub size: u64,
    pub root: String,
}

/// What the signature covers besides the person digest; recorded as it is in the receiving
/// enrolment's first event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateCore {
    pub version: u32,
    /// `cert_…`: the same for every copy of one enrolment's certificate, so it is used once.
    pub id: String,
    pub key_id: String,
    pub issuer: String,
    pub issued_at: String,
    pub enrolment: CertifiedEnrolment,
    /// Hash of the enrolment's newest event, and how many events its chain has.
    pub history_head: String,
    pub history_length: u64,
    pub checkpoint: LogCheckpoint,
}

/// The person the certificate is for: what the receiving school needs to admit them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifiedPerson {
    pub nonce: String,
    pub national_id: String,
    pub name: String,
    pub gender: super::Gender,
    pub birth_date: Date,
    pub id_card: Option<String>,
    pub guardians: Vec<Guardian>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub core: CertificateCore,
    pub person: CertifiedPerson,
}

/// A certificate and its signature (hex), as `GET /v1/students/{id}/transfer-certificate`
/// answers and `POST /v1/students {"transfer_certificate"}` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCertificate {
    pub certificate: Certificate,
    pub signature: String,
}

/// `POST /v1/students` with a transfer certificate: where the receiving school places the
/// student; who they are comes from the certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifiedAdmission {
    pub school: String,
    pub grade: i64,
    #[serde(default)]
    pub class: Option<String>,
    pub entry_date: String,
    pub transfer_certificate: SignedCertificate,
}

/// What the receiving enrolment's first event records of the certificate it was admitted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateProof {
    pub core: CertificateCore,
    pub person_digest: String,
    pub signature: String,
}

/// A public key as `GET /v1/keys` publishes it and a trust list holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKey {
    pub key_id: String,
    pub issuer: String,
    /// The Ed25519 public key, hex.
    pub public_key: String,
}

/// Why a certificate is refused: a stable code and a Chinese message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refusal(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl CertifiedPerson {
    pub fn digest(&self) -> String {
        sha256_hex(&serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The bytes the signature is over: the core and the person digest, in a fixed encoding.
fn signed_message(core: &CertificateCore, person_digest: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Message<'a> {
        core: &'a CertificateCore,
        person_digest: &'a str,
    }
    serde_json::to_vec(&Message {
        core,
        person_digest,
    })
    .unwrap_or_default()
}

/// The key id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id_of(key: &VerifyingKey) -> String {
    sha256_hex(key.as_bytes())[..16].to_owned()
}

/// This server's signing key, every public key it has published, and the keys it trusts.
pub struct KeyRing {
    issuer: String,
    signing: SigningKey,
    /// Every key this server has signed with, newest last (what `GET /v1/keys` publishes).
    own: Vec<PublicKey>,
    trusted: BTreeMap<String, VerifyingKey>,
}

impl KeyRing {
    /// `signing` signs from now on; `retired` are older keys of this server (still published
    /// and trusted, so their certificates stay valid); `trusted` are other servers' keys.
    pub fn new(
        issuer: String,
        signing: SigningKey,
        retired: Vec<VerifyingKey>,
        trusted: Vec<PublicKey>,
    ) -> Result<KeyRing, Refusal> {
        let mut ring = KeyRing {
            issuer,
            signing,
            own: Vec::new(),
            trusted: BTreeMap::new(),
        };
        let current = ring.signing.verifying_key();
        for key in retired.into_iter().chain([current]) {
            let entry = PublicKey {
                key_id: key_id_of(&key),
                issuer: ring.issuer.clone(),
                public_key: hex::encode(key.as_bytes()),
            };
            ring.trusted.insert(entry.key_id.clone(), key);
            if !ring.own.iter().any(|k| k.key_id == entry.key_id) {
                ring.own.push(entry);
            }
        }
        for t in trusted {
            let key = parse_public_key(&t)?;
            ring.trusted.insert(t.key_id, key);
        }
        Ok(ring)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn published(&self) -> &[PublicKey] {
        &self.own
    }

    pub fn signing_key_id(&self) -> String {
        key_id_of(&self.signing.verifying_key())
    }

    /// Signs a certificate made of `core` (its `key_id` and `issuer` set here) and `person`.
    pub fn sign(&self, mut core: CertificateCore, person: CertifiedPerson) -> SignedCertificate {
        core.key_id = self.signing_key_id();
        core.issuer.clone_from(&self.issuer);
        let signature = self.signing.sign(&signed_message(&core, &person.digest()));
        SignedCertificate {
            certificate: Certificate { core, person },
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// Checks a certificate: a trusted key, a signature over exactly this content; returns the
    /// proof the admission records.
    pub fn verify(&self, signed: &SignedCertificate) -> Result<CertificateProof, Refusal> {
        let proof = CertificateProof {
            core: signed.certificate.core.clone(),
            person_digest: signed.certificate.person.digest(),
            signature: signed.signature.clone(),
        };
        self.verify_proof(&proof)?;
        Ok(proof)
    }

    /// Checks a recorded proof again (what `verify` does with an enrolment's first event).
    pub fn verify_proof(&self, proof: &CertificateProof) -> Result<(), Refusal> {
        if proof.core.version != CERTIFICATE_VERSION {
            return Err(refusal(
                "certificate_invalid",
                format!("转学证明版本 {} 无法识别", proof.core.version),
            ));
        }
        let Some(key) = self.trusted.get(&proof.core.key_id) else {
            return Err(refusal(
                "certificate_untrusted",
                format!(
                    "转学证明的签发密钥「{}」(签发方「{}」)不在本服务器的信任列表中;请先用 xueji trust add 加入对方公布的公钥",
                    proof.core.key_id, proof.core.issuer
                ),
            ));
        };
        let signature = hex::decode(&proof.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| refusal("certificate_invalid", "转学证明的签名格式不正确"))?;
        key.verify(
            &signed_message(&proof.core, &proof.person_digest),
            &signature,
        )
        .map_err(|_| {
            refusal(
                "certificate_invalid",
                "转学证明的签名与内容不符:证明已被改动,或不是该密钥签发的",
            )
        })
    }
}

/// A published key, checked: valid hex of a valid Ed25519 key whose id is the one given.
pub fn parse_public_key(k: &PublicKey) -> Result<VerifyingKey, Refusal> {
    let bad = || {
        refusal(
            "invalid_public_key",
            format!("公钥「{}」格式不正确", k.key_id),
        )
    };
    let bytes = hex::decode(&k.public_key).map_err(|_| bad())?;
    let bytes = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad())?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
    if key_id_of(&key) != k.key_id {
        return Err(bad());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(issuer: &str, trusted: Vec<PublicKey>) -> KeyRing {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        KeyRing::new(issuer.into(), key, Vec::new(), trusted).expect("ring")
    }

    fn core() -> CertificateCore {
        CertificateCore {
            version: CERTIFICATE_VERSION,
            id: "cert_1".into(),
            key_id: String::new(),
            issuer: String::new(),
            issued_at: "2026-03-02T00:00:00Z".into(),
            enrolment: CertifiedEnrolment {
                student: "stu_1".into(),
                school: "yanhe-no4".into(),
                school_name: "沿河县第四完全小学".into(),
                jurisdiction: "yanhe-primary".into(),
                level: Level::Primary,
                grade: 3,
                class: Some("4".into()),
                status: Status::TransferredOut,
                entry_date: Date::parse("2023-09-01").expect("date"),
                left_on: Date::parse("2026-03-02").expect("date"),
            },
            history_head: "ab".repeat(32),
            history_length: 3,
            checkpoint: LogCheckpoint {
                jurisdiction: "yanhe-primary".into(),
                size: 9,
                root: "cd".repeat(32),
            },
        }
    }

    fn person() -> CertifiedPerson {
        CertifiedPerson {
            nonce: "00".repeat(16),
            national_id: "G52222820170308002X".into(),
            name: "田小梅".into(),
            gender: super::super::Gender::Female,
            birth_date: Date::parse("2017-03-08").expect("date"),
            id_card: Some("52222820170308002X".into()),
            guardians: Vec::new(),
        }
    }

    #[test]
    fn a_certificate_verifies_where_its_key_is_trusted_and_nowhere_else() {
        let sending = ring("沿河县", Vec::new());
        let signed = sending.sign(core(), person());
        let receiving = ring("珠海市", sending.published().to_vec());
        let proof = receiving.verify(&signed).expect("trusted and intact");
        // The recorded proof verifies again without the personal values.
        receiving.verify_proof(&proof).expect("proof verifies");
        let stranger = ring("别处", Vec::new());
        assert_eq!(
            stranger.verify(&signed).map_err(|r| r.code),
            Err("certificate_untrusted")
        );
    }

    #[test]
    fn any_change_to_a_certificate_breaks_its_signature() {
        let sending = ring("沿河县", Vec::new());
        let receiving = ring("珠海市", sending.published().to_vec());
        let signed = sending.sign(core(), person());
        let mut edited = signed.clone();
        edited.certificate.person.name = "田小兰".into();
        assert_eq!(
            receiving.verify(&edited).map_err(|r| r.code),
            Err("certificate_invalid")
        );
        let mut edited = signed.clone();
        edited.certificate.core.enrolment.grade = 4;
        assert_eq!(
            receiving.verify(&edited).map_err(|r| r.code),
            Err("certificate_invalid")
        );
        let mut edited = signed;
        edited.signature.replace_range(0..2, "00");
        assert!(receiving.verify(&edited).is_err());
    }

    #[test]
    fn a_published_key_must_match_its_id() {
        let sending = ring("沿河县", Vec::new());
        let mut key = sending.published()[0].clone();
        parse_public_key(&key).expect("valid");
        key.key_id = "0000000000000000".into();
        assert_eq!(
            parse_public_key(&key).map_err(|r| r.code),
            Err("invalid_public_key")
        );
    }
}

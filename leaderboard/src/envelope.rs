//! Signed statements: an in-toto Statement (v1) naming the results file by SHA-256, in a DSSE envelope signed with
//! ed25519 over DSSE's pre-authentication encoding (PAE), so the signature covers the payload type too.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use crate::keys::{key_id, Keyring};

/// DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v1 `_type`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of an edgebench submission or reproduction.
pub const PREDICATE_TYPE: &str = "urn:edgebench:submission:v1";

/// A DSSE envelope (`*.dsse.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the statement's JSON.
    pub payload: String,
    /// Always [`PAYLOAD_TYPE`].
    pub payload_type: String,
    /// Exactly one signature.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// [`key_id`] of the signing key.
    pub keyid: String,
    /// Base64 of the ed25519 signature over the PAE.
    pub sig: String,
}

/// in-toto Statement v1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// The results file (one subject).
    pub subject: Vec<Subject>,
    /// [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// What is claimed.
    pub predicate: Predicate,
}

/// A signed file: its name and digests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// File name.
    pub name: String,
    /// `sha256` → lowercase hex.
    pub digest: BTreeMap<String, String>,
}

/// What the signer says about the results file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    /// `submission` or `reproduction`.
    pub kind: String,
    /// The signer's name (as in the leaderboard's key list).
    pub signer: String,
    /// Version of the edgebench that signed it.
    pub edgebench_version: String,
    /// SHA-256 of that edgebench binary.
    pub edgebench_sha256: String,
    /// For a reproduction: what it reproduces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproduces: Option<Reproduces>,
}

/// The submission a maintainer's re-run reproduces, and the value that chose its cells.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reproduces {
    /// The submission's results SHA-256.
    pub results_sha256: String,
    /// A value published after the submission (e.g. a later commit of the leaderboard), which with the submission's
    /// SHA-256 seeds the choice of cells.
    pub beacon: String,
}

/// DSSE's pre-authentication encoding: `DSSEv1 LEN(type) type LEN(body) body`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// A statement about the file `name` with this SHA-256.
pub fn statement(name: &str, sha256: &str, predicate: Predicate) -> Statement {
    Statement {
        type_: STATEMENT_TYPE.into(),
        subject: vec![Subject { name: name.into(), digest: BTreeMap::from([("sha256".into(), sha256.into())]) }],
        predicate_type: PREDICATE_TYPE.into(),
        predicate,
    }
}

/// Signs `statement` into an envelope.
pub fn sign(statement: &Statement, key: &SigningKey) -> Envelope {
    let body = serde_json::to_vec(statement).expect("statement serializes");
    let sig: Signature = key.sign(&pae(PAYLOAD_TYPE, &body));
    Envelope {
        payload: B64.encode(&body),
        payload_type: PAYLOAD_TYPE.into(),
        signatures: vec![EnvelopeSignature { keyid: key_id(&key.verifying_key()), sig: B64.encode(sig.to_bytes()) }],
    }
}

/// Who signed an envelope, as far as the keyring knows.
#[derive(Debug, Clone, PartialEq)]
pub enum Signer {
    /// A listed key, not revoked.
    Accepted {
        /// Its name.
        name: String,
        /// Its id.
        id: String,
        /// Its role.
        role: crate::keys::Role,
    },
    /// A valid envelope whose key is not (yet) in the list: the statement cannot be checked against any key.
    Unknown {
        /// The key id it names.
        id: String,
    },
}

/// Why an envelope is rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not a DSSE envelope of an in-toto statement of ours.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The signature does not verify with the key it names.
    #[error("forged signature: the signature does not verify with key {0}")]
    Forged(String),
    /// Signed by a revoked key.
    #[error("signed by revoked key {name} ({id}): {why}")]
    Revoked {
        /// Key name.
        name: String,
        /// Key id.
        id: String,
        /// When and why it was revoked.
        why: String,
    },
}

/// Opens an envelope: checks its form, verifies the signature with the key it names (when listed) and returns the
/// statement and its signer. An unlisted key's envelope is returned as [`Signer::Unknown`], its signature unverified.
pub fn open(text: &str, keys: &Keyring) -> Result<(Statement, Signer), EnvelopeError> {
    let malformed = |m: String| EnvelopeError::Malformed(m);
    let env: Envelope = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(malformed(format!("payloadType {:?}, expected {PAYLOAD_TYPE:?}", env.payload_type)));
    }
    let [s] = env.signatures.as_slice() else {
        return Err(malformed(format!("{} signatures, expected exactly one", env.signatures.len())));
    };
    let body = B64.decode(&env.payload).map_err(|e| malformed(format!("payload is not base64: {e}")))?;
    let statement: Statement =
        serde_json::from_slice(&body).map_err(|e| malformed(format!("payload is not a statement: {e}")))?;
    if statement.type_ != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
        return Err(malformed(format!("statement of type {:?} / {:?}", statement.type_, statement.predicate_type)));
    }
    if statement.subject.len() != 1 {
        return Err(malformed(format!("{} subjects, expected one", statement.subject.len())));
    }
    let Some(key) = keys.get(&s.keyid) else {
        return Ok((statement, Signer::Unknown { id: s.keyid.clone() }));
    };
    let sig = B64
        .decode(&s.sig)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
        .map(|b| Signature::from_bytes(&b))
        .ok_or_else(|| malformed("signature is not 64 base64-encoded bytes".into()))?;
    key.key.verify_strict(&pae(&env.payload_type, &body), &sig).map_err(|_| EnvelopeError::Forged(key.id.clone()))?;
    if let Some(why) = &key.revoked {
        return Err(EnvelopeError::Revoked { name: key.name.clone(), id: key.id.clone(), why: why.clone() });
    }
    Ok((statement, Signer::Accepted { name: key.name.clone(), id: key.id.clone(), role: key.role }))
}

impl Statement {
    /// The one subject's SHA-256.
    pub fn sha256(&self) -> Option<&str> {
        self.subject.first().and_then(|s| s.digest.get("sha256")).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Key, Role};

    fn ring(k: &SigningKey, revoked: Option<&str>) -> Keyring {
        let vk = k.verifying_key();
        Keyring {
            keys: vec![Key {
                name: "a".into(),
                key: vk,
                id: key_id(&vk),
                role: Role::Submitter,
                revoked: revoked.map(Into::into),
            }],
        }
    }

    fn pred() -> Predicate {
        Predicate {
            kind: "submission".into(),
            signer: "a".into(),
            edgebench_version: "0.1.0".into(),
            edgebench_sha256: "00".into(),
            reproduces: None,
        }
    }

    #[test]
    fn pae_matches_the_dsse_definition() {
        // DSSE protocol's own worked example: type "http://example.com/HelloWorld", body "hello world".
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_open_and_every_way_to_break_it() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let st = statement("r.json", "ab", pred());
        let env = sign(&st, &k);
        let text = serde_json::to_string(&env).unwrap();
        let (got, who) = open(&text, &ring(&k, None)).unwrap();
        assert_eq!(got, st);
        assert!(matches!(who, Signer::Accepted { ref name, .. } if name == "a"));
        // Unknown key: returned as such.
        assert!(matches!(open(&text, &Keyring::default()).unwrap().1, Signer::Unknown { .. }));
        // Revoked.
        assert!(matches!(open(&text, &ring(&k, Some("lost"))), Err(EnvelopeError::Revoked { .. })));
        // Payload changed after signing.
        let mut bad = env.clone();
        let st2 = statement("r.json", "cd", pred());
        bad.payload = B64.encode(serde_json::to_vec(&st2).unwrap());
        let e = open(&serde_json::to_string(&bad).unwrap(), &ring(&k, None)).unwrap_err();
        assert!(matches!(e, EnvelopeError::Forged(_)), "{e}");
        // Signed by another key that claims this key's id.
        let other = sign(&st, &SigningKey::from_bytes(&[8; 32]));
        let mut forged = env.clone();
        forged.signatures[0].sig = other.signatures[0].sig.clone();
        assert!(matches!(
            open(&serde_json::to_string(&forged).unwrap(), &ring(&k, None)),
            Err(EnvelopeError::Forged(_))
        ));
        // No signature, two signatures, another payload type, an unknown field.
        for mutate in [
            |e: &mut Envelope| e.signatures.clear(),
            |e: &mut Envelope| e.signatures.push(e.signatures[0].clone()),
            |e: &mut Envelope| e.payload_type = "text/plain".into(),
        ] {
            let mut m = env.clone();
            mutate(&mut m);
            assert!(matches!(
                open(&serde_json::to_string(&m).unwrap(), &ring(&k, None)),
                Err(EnvelopeError::Malformed(_))
            ));
        }
        let extra = text.replacen('{', "{\"x\":1,", 1);
        assert!(matches!(open(&extra, &ring(&k, None)), Err(EnvelopeError::Malformed(_))));
    }
}

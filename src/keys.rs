//! This server's transfer-certificate keys and the keys it trusts, as files (the I/O edge of
//! `domain::certificate`).
//!
//! - `DATA/keys/signing.key`: the signing key (32 bytes, hex), made on first start, mode 0600.
//! - `DATA/keys/retired/*.key`: earlier signing keys. Rotation: stop the server, move
//!   `signing.key` into `retired/` (any name ending `.key`), start it: a new key signs from then
//!   on, and the retired ones stay published and trusted, so certificates they signed stay valid
//!   here and at every server that trusted them. Publish the new key to the receiving servers
//!   (`GET /v1/keys`, then `xueji trust add` there) before issuing certificates with it.
//! - The trust list (`serve --trust DIR`, default `DATA/trusted`): one JSON file per trusted key,
//!   as `GET /v1/keys` lists them; `xueji trust add FILE` writes them from that answer.

use anyhow::{Context, Result, bail};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::domain::certificate::{KeyRing, PublicKey, parse_public_key};
use crate::engine::private;

/// What `GET /v1/keys` answers: the issuer and every public key it has signed with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedKeys {
    pub issuer: String,
    pub keys: Vec<PublicKey>,
}

fn read_secret(path: &Path) -> Result<SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .with_context(|| format!("{} is not a 32-byte hex key", path.display()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// The key ring of a data folder: its signing key (made when absent), its retired keys, and the
/// keys trusted in `trust_dir` (default `DATA/trusted`; a missing folder trusts no one else).
pub fn load(data: &Path, trust_dir: Option<&Path>, issuer: &str) -> Result<KeyRing> {
    let dir = data.join("keys");
    private::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let signing_path = dir.join("signing.key");
    let signing = if signing_path.is_file() {
        private::restrict(&signing_path)?;
        read_secret(&signing_path)?
    } else {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        private::write(&signing_path, hex::encode(key.to_bytes()).as_bytes())
            .with_context(|| format!("writing {}", signing_path.display()))?;
        key
    };
    let mut retired: Vec<VerifyingKey> = Vec::new();
    for path in key_files(&dir.join("retired"), "key")? {
        retired.push(read_secret(&path)?.verifying_key());
    }
    let trust_dir = trust_dir.map_or_else(|| data.join("trusted"), Path::to_path_buf);
    let mut trusted = Vec::new();
    for path in key_files(&trust_dir, "json")? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let key: PublicKey = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a published key", path.display()))?;
        trusted.push(key);
    }
    KeyRing::new(issuer.to_owned(), signing, retired, trusted)
        .map_err(|r| anyhow::anyhow!("{}: {}", r.code, r.message))
}

/// The key ring of a data folder that a server has already run on (its signing key exists), for
/// the commands that read the store with the server stopped (`verify` checks admissions on
/// certificates with it); `None` for a folder no server has made keys in. Writes nothing.
pub fn load_existing(data: &Path) -> Result<Option<KeyRing>> {
    if !data.join("keys").join("signing.key").is_file() {
        return Ok(None);
    }
    load(data, None, "xueji").map(Some)
}

/// The files of a folder with an extension, sorted; none when the folder does not exist.
fn key_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    Ok(out)
}

/// `xueji trust add`: adds every key of another server's `GET /v1/keys` answer (or a single key
/// of it) to a trust folder; returns the ids added. A key is checked before it is written.
pub fn trust_add(trust_dir: &Path, published: &str) -> Result<Vec<String>> {
    let keys: Vec<PublicKey> = match serde_json::from_str::<PublishedKeys>(published) {
        Ok(p) => p.keys,
        Err(_) => vec![
            serde_json::from_str::<PublicKey>(published)
                .context("not a GET /v1/keys answer nor one of its keys")?,
        ],
    };
    if keys.is_empty() {
        bail!("no key to trust");
    }
    std::fs::create_dir_all(trust_dir)
        .with_context(|| format!("creating {}", trust_dir.display()))?;
    let mut added = Vec::new();
    for key in keys {
        parse_public_key(&key).map_err(|r| anyhow::anyhow!("{}: {}", r.code, r.message))?;
        let path = trust_dir.join(format!("{}.json", key.key_id));
        std::fs::write(&path, serde_json::to_vec_pretty(&key)?)
            .with_context(|| format!("writing {}", path.display()))?;
        added.push(key.key_id);
    }
    Ok(added)
}

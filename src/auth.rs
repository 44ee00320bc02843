//! Roles, scopes and token records: who may see and do what. Pure types; the HTTP layer enforces
//! them in one place (`http::auth`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strum::{EnumIter, EnumString, IntoStaticStr};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    EnumString,
    IntoStaticStr,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    Admin,
    DistrictOfficer,
    SchoolLeader,
    Registrar,
    HeadTeacher,
    Guardian,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A bearer token as stored: only its SHA-256 is kept, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default)]
    pub revoked: bool,
}

/// The stored form of a bearer token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Token records by hash, so that authenticating a request reads no store. Every token write
/// goes through the service of this process (`xueji token` needs the server stopped), which
/// calls [`TokenCache::invalidate`] once the write is committed.
#[derive(Debug, Default)]
pub struct TokenCache {
    inner: std::sync::RwLock<CachedTokens>,
}

#[derive(Debug, Default)]
struct CachedTokens {
    /// Moves on every invalidation: a record read from the store before one is not cached.
    generation: u64,
    records: std::collections::HashMap<String, TokenRecord>,
}

impl TokenCache {
    /// The most records kept; beyond, the cache starts again empty. Only stored tokens are
    /// cached, so guessing tokens cannot grow it.
    const CAPACITY: usize = 4096;

    pub fn get(&self, hash: &str) -> Option<TokenRecord> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.records.get(hash).cloned()
    }

    /// Take before reading the store; pass to [`TokenCache::insert`] with what was read.
    pub fn generation(&self) -> u64 {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation
    }

    /// Caches a record read from the store, unless a token was written since `generation`
    /// was taken (the record read may predate that write).
    pub fn insert(&self, hash: String, record: TokenRecord, generation: u64) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.generation != generation {
            return;
        }
        if inner.records.len() >= Self::CAPACITY {
            inner.records.clear();
        }
        inner.records.insert(hash, record);
    }

    /// Forgets every record: a token was created, changed or revoked.
    pub fn invalidate(&self) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.generation += 1;
        inner.records.clear();
    }
}

/// A new random token: 32 bytes of OS randomness, URL-safe.
pub fn generate_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("xj_{}", hex::encode(b))
}

/// What a caller may reach. Every route asks these functions, and nothing else decides scope.
pub mod scope {
    use super::{Role, TokenRecord};
    use crate::domain::{ApprovalStep, School, Student};

    /// A school is in scope for admins, the officers over it, and its own staff.
    pub fn school(t: &TokenRecord, s: &School) -> bool {
        match t.role {
            Role::Admin => true,
            Role::DistrictOfficer => {
                t.jurisdiction.as_deref() == Some(s.jurisdiction.as_str())
                    && (t.area.is_none() || t.area == s.area)
            }
            Role::SchoolLeader | Role::Registrar | Role::HeadTeacher => {
                t.school.as_deref() == Some(s.id.as_str())
            }
            Role::Guardian => false,
        }
    }

    /// A student is in scope for whoever has the school, except that a head teacher has only
    /// their class and a guardian only their child.
    pub fn student(t: &TokenRecord, st: &Student, s: &School) -> bool {
        match t.role {
            Role::HeadTeacher => school(t, s) && t.class.is_some() && t.class == st.class,
            Role::Guardian => t.student.as_deref() == Some(st.id.as_str()),
            _ => school(t, s),
        }
    }

    /// A request is visible to whoever may approve any of its steps or has its school.
    pub fn request(t: &TokenRecord, s: &School, receiving: Option<&School>) -> bool {
        match t.role {
            Role::Guardian | Role::HeadTeacher => false,
            _ => school(t, s) || receiving.is_some_and(|rs| school(t, rs)),
        }
    }

    /// Who approves a step: `school` the student's school leader, `receiving_school` the
    /// leader of the school a transfer goes to, `district` an officer whose area is the school's
    /// (a jurisdiction-wide officer for a school without area), `city` a jurisdiction-wide
    /// officer. Admins may act for any step.
    pub fn approve(
        t: &TokenRecord,
        step: ApprovalStep,
        s: &School,
        receiving: Option<&School>,
    ) -> bool {
        match (t.role, step) {
            (Role::Admin, _) => true,
            (Role::SchoolLeader, ApprovalStep::School) => {
                t.school.as_deref() == Some(s.id.as_str())
            }
            (Role::SchoolLeader, ApprovalStep::ReceivingSchool) => {
                receiving.is_some_and(|r| t.school.as_deref() == Some(r.id.as_str()))
            }
            (Role::DistrictOfficer, ApprovalStep::District) => {
                t.jurisdiction.as_deref() == Some(s.jurisdiction.as_str()) && t.area == s.area
            }
            (Role::DistrictOfficer, ApprovalStep::City) => {
                t.jurisdiction.as_deref() == Some(s.jurisdiction.as_str()) && t.area.is_none()
            }
            _ => false,
        }
    }

    /// Whether `creator` may issue `wanted`: admins anything; an officer only tokens inside
    /// its own scope (never admin, never wider).
    pub fn issue_token(
        creator: &TokenRecord,
        wanted: &TokenRecord,
        school_of: impl Fn(&str) -> Option<School>,
    ) -> bool {
        match creator.role {
            Role::Admin => true,
            Role::DistrictOfficer => {
                if wanted.role == Role::Admin || wanted.jurisdiction != creator.jurisdiction {
                    return false;
                }
                if wanted.role == Role::DistrictOfficer {
                    return creator.area.is_none() || wanted.area == creator.area;
                }
                match wanted.school.as_deref().and_then(&school_of) {
                    Some(s) => school(creator, &s),
                    None => false,
                }
            }
            _ => false,
        }
    }
}

/// Which personal fields each role sees. Written down once; `http::view` applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visibility {
    /// ID number and national number in full (otherwise masked like `5222************23`).
    pub identity_numbers: bool,
    /// Guardians' names and phone numbers.
    pub guardians: bool,
    /// `extra`: health, family and other free fields.
    pub extra: bool,
}

impl Visibility {
    /// Nothing of a student is hidden from this role.
    pub fn everything(self) -> bool {
        self.identity_numbers && self.guardians && self.extra
    }
}

impl Role {
    pub fn visibility(self) -> Visibility {
        match self {
            Role::Admin | Role::SchoolLeader | Role::Registrar => Visibility {
                identity_numbers: true,
                guardians: true,
                extra: true,
            },
            Role::DistrictOfficer => Visibility {
                identity_numbers: true,
                guardians: false,
                extra: false,
            },
            Role::HeadTeacher => Visibility {
                identity_numbers: false,
                guardians: true,
                extra: false,
            },
            Role::Guardian => Visibility {
                identity_numbers: false,
                guardians: true,
                extra: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, revoked: bool) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            role: Role::Registrar,
            jurisdiction: None,
            area: None,
            school: Some("s1".into()),
            class: None,
            student: None,
            label: None,
            created_at: "2026-11-29T00:00:00Z".into(),
            created_by: None,
            revoked,
        }
    }

    #[test]
    fn a_token_cache_forgets_on_every_write_and_never_keeps_a_read_from_before_one() {
        let cache = TokenCache::default();
        let before = cache.generation();
        cache.insert("h1".into(), record("tok_1", false), before);
        assert_eq!(cache.get("h1"), Some(record("tok_1", false)));

        // A revocation commits while a request is reading the old record: the request must not
        // put the old record back.
        let read_started = cache.generation();
        cache.invalidate();
        assert_eq!(cache.get("h1"), None);
        cache.insert("h1".into(), record("tok_1", false), read_started);
        assert_eq!(
            cache.get("h1"),
            None,
            "a read older than the write is not cached"
        );
        cache.insert("h1".into(), record("tok_1", true), cache.generation());
        assert_eq!(cache.get("h1"), Some(record("tok_1", true)));
    }

    #[test]
    fn a_full_token_cache_starts_again_rather_than_grow() {
        let cache = TokenCache::default();
        let g = cache.generation();
        for i in 0..TokenCache::CAPACITY {
            cache.insert(format!("h{i}"), record("tok", false), g);
        }
        assert!(cache.get("h0").is_some());
        cache.insert("last".into(), record("tok", false), g);
        assert!(cache.get("h0").is_none());
        assert!(cache.get("last").is_some());
    }
}

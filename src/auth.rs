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

    pub fn zh(self) -> &'static str {
        match self {
            Role::Admin => "系统管理员",
            Role::DistrictOfficer => "教育局学籍管理员",
            Role::SchoolLeader => "学校负责人",
            Role::Registrar => "学校学籍管理员",
            Role::HeadTeacher => "班主任",
            Role::Guardian => "监护人",
        }
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
    /// RFC 3339, UTC: the token is refused from this instant on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// `created_by` of the token `XUEJI_ADMIN_TOKEN` names: how a start tells the variable's
/// earlier tokens from every other admin token.
pub const ENV_ADMIN: &str = "env:XUEJI_ADMIN_TOKEN";

impl TokenRecord {
    /// A record with no scope, label or expiry; the service fills `id` and `created_at`.
    pub fn new(role: Role) -> TokenRecord {
        TokenRecord {
            id: String::new(),
            role,
            jurisdiction: None,
            area: None,
            school: None,
            class: None,
            student: None,
            label: None,
            created_at: String::new(),
            created_by: None,
            revoked: false,
            expires_at: None,
        }
    }

    /// Whether the expiry has passed at `now`. An expiry that does not parse (never written
    /// by this code) counts as passed: a token is refused rather than kept alive by a bad record.
    pub fn expired_at(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        match &self.expires_at {
            None => false,
            Some(e) => chrono::DateTime::parse_from_rfc3339(e).map_or(true, |e| e <= now),
        }
    }

    /// Whether this token came from `XUEJI_ADMIN_TOKEN`; stores written before [`ENV_ADMIN`]
    /// marked it by its label alone (no issuer).
    pub fn from_env(&self) -> bool {
        self.role == Role::Admin
            && (self.created_by.as_deref() == Some(ENV_ADMIN)
                || (self.created_by.is_none()
                    && self.label.as_deref() == Some("XUEJI_ADMIN_TOKEN")))
    }

    /// The scope fields as one line for tables: `jurisdiction=… area=… school=…`, `-` if none.
    pub fn scope_text(&self) -> String {
        let parts: Vec<String> = [
            ("jurisdiction", &self.jurisdiction),
            ("area", &self.area),
            ("school", &self.school),
            ("class", &self.class),
            ("student", &self.student),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(" ")
        }
    }
}

/// Reads a token expiry: RFC 3339 (`2027-07-01T08:00:00+08:00`), or a date (`2027-06-30`),
/// which keeps the token through that whole day in China time (UTC+8, no daylight saving):
/// it expires at the next midnight there. Returns the instant in UTC.
pub fn parse_expiry(
    text: &str,
) -> Result<chrono::DateTime<chrono::Utc>, crate::domain::FieldError> {
    use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let china = FixedOffset::east_opt(8 * 3600);
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
        .and_then(|d| d.succ_opt())
        .and_then(|next| next.and_hms_opt(0, 0, 0))
        .zip(china)
        .and_then(|(midnight, tz)| midnight.and_local_timezone(tz).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            crate::domain::FieldError::new(
                "invalid_date",
                "expires_at",
                "有效期须为日期(如 2027-06-30)或 RFC 3339 时间(如 2027-06-30T18:00:00+08:00)",
            )
        })
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
    /// officer; `receiving_district` and `receiving_city` the same of the receiving school's
    /// jurisdiction. Admins may act for any step.
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
            (Role::DistrictOfficer, ApprovalStep::ReceivingDistrict) => {
                receiving.is_some_and(|r| {
                    t.jurisdiction.as_deref() == Some(r.jurisdiction.as_str()) && t.area == r.area
                })
            }
            (Role::DistrictOfficer, ApprovalStep::ReceivingCity) => receiving.is_some_and(|r| {
                t.jurisdiction.as_deref() == Some(r.jurisdiction.as_str()) && t.area.is_none()
            }),
            _ => false,
        }
    }

    /// Whether `creator` may issue `wanted`: admins anything; an officer only tokens inside
    /// its own scope (never admin, never wider). The same test says which tokens an officer
    /// may list and revoke.
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
            expires_at: None,
        }
    }

    #[test]
    fn an_expiry_is_an_instant_or_a_whole_day_in_china_time() {
        let e = |t: &str| parse_expiry(t).map(|t| t.to_rfc3339());
        assert_eq!(
            e("2027-06-30").ok().as_deref(),
            Some("2027-06-30T16:00:00+00:00")
        );
        assert_eq!(
            e("2027-06-30T18:00:00+08:00").ok().as_deref(),
            Some("2027-06-30T10:00:00+00:00")
        );
        for bad in [
            "",
            "2027-6-30",
            "2027-02-30",
            "tomorrow",
            "2027-06-30T18:00",
        ] {
            assert!(e(bad).is_err(), "{bad}");
        }
        let mut r = record("tok_1", false);
        let now = chrono::Utc::now();
        assert!(!r.expired_at(now));
        r.expires_at = Some((now + chrono::Duration::seconds(60)).to_rfc3339());
        assert!(!r.expired_at(now));
        assert!(r.expired_at(now + chrono::Duration::seconds(60)));
        r.expires_at = Some("garbage".into());
        assert!(r.expired_at(now), "an unreadable expiry refuses");
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

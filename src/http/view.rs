//! What a caller sees of a student (masking by role), and paging.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Role;
use crate::domain::Student;
use crate::domain::identity::mask;

/// A student as a role may see it; the masking table is `Role::visibility`.
pub fn student_view(s: &Student, role: Role) -> Value {
    let vis = role.visibility();
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        if !vis.identity_numbers {
            o.insert("national_id".into(), json!(s.national_id.masked()));
            o.insert(
                "id_card".into(),
                json!(s.id_card.as_ref().map(|c| c.masked())),
            );
        }
        if !vis.guardians {
            o.insert("guardians".into(), json!(s.guardians.iter().map(|g| json!({"name": mask(&g.name, 1, 0), "relation": g.relation, "phone": mask(&g.phone, 3, 2)})).collect::<Vec<_>>()));
        }
        if !vis.extra {
            o.remove("extra");
        }
        o.insert("status_zh".into(), json!(s.status.zh()));
    }
    v
}

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size: default 100, at most 1000 (larger values are clamped).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    /// The index key the previous page ended at (cursors are hex-encoded keys).
    pub fn after(&self) -> Result<Option<String>, super::error::ApiError> {
        match &self.cursor {
            None => Ok(None),
            Some(c) => hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .map(Some)
                .ok_or_else(|| {
                    super::error::ApiError::bad_request("invalid_cursor", "cursor", "分页游标无效")
                }),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from `(key, item)` rows fetched with `limit + 1` to know whether more follow.
    pub fn from_rows<R>(mut rows: Vec<(String, R)>, limit: usize, f: impl Fn(R) -> T) -> Page<T> {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|(k, _)| hex::encode(k.as_bytes()))
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(|(_, r)| f(r)).collect(),
            next_cursor,
        }
    }
}

//! What a caller sees of a student (masking by role), and paging.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Role;
use crate::domain::identity::mask;
use crate::domain::{Decision, Student};

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

/// What a message shows in place of one that carries a value the caller's role may not see.
pub const WITHHELD_MESSAGE: &str = "(此说明含有本角色无权查看的个人信息,已隐去)";

/// The values of `s` that `role` may not see, as a rule's message could spell them out.
fn hidden_values(s: &Student, role: Role) -> Vec<String> {
    let vis = role.visibility();
    let mut hidden = Vec::new();
    if !vis.identity_numbers {
        hidden.push(s.national_id.as_str().to_owned());
        hidden.extend(s.id_card.as_ref().map(|c| c.as_str().to_owned()));
    }
    if !vis.guardians {
        for g in &s.guardians {
            hidden.push(g.name.clone());
            hidden.push(g.phone.clone());
        }
    }
    if !vis.extra {
        let mut stack: Vec<&Value> = s.extra.values().collect();
        while let Some(v) = stack.pop() {
            match v {
                Value::String(text) => hidden.push(text.clone()),
                Value::Number(n) => hidden.push(n.to_string()),
                Value::Array(items) => stack.extend(items),
                Value::Object(map) => stack.extend(map.values()),
                Value::Bool(_) | Value::Null => {}
            }
        }
    }
    // A single character (or digit) would withhold almost every message and spells out nothing.
    hidden.retain(|v| v.trim().chars().count() >= 2);
    hidden
}

/// A decision as `role` may see it for student `s`: a rule's message that spells out a value the
/// role may not see (a script may build messages from any field) is withheld; the rule, its
/// effect and its citation stay.
pub fn decision_view(mut decision: Decision, s: &Student, role: Role) -> Decision {
    let hidden = hidden_values(s, role);
    if hidden.is_empty() {
        return decision;
    }
    for rule in &mut decision.rules {
        if hidden.iter().any(|v| rule.message.contains(v.trim())) {
            rule.message = WITHHELD_MESSAGE.into();
        }
    }
    decision
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

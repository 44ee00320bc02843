//! Schools: the unit a registrar works in, placed in a jurisdiction and optionally an area.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr};

use super::dates::Date;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    EnumString,
    IntoStaticStr,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Level {
    Primary,
    Junior,
    Senior,
    Vocational,
    Undergraduate,
    Special,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn zh(self) -> &'static str {
        match self {
            Level::Primary => "小学",
            Level::Junior => "初中",
            Level::Senior => "普通高中",
            Level::Vocational => "中等职业学校",
            Level::Undergraduate => "普通本科",
            Level::Special => "特殊教育学校",
        }
    }

    /// 义务教育: primary, junior and special education.
    pub fn is_compulsory(self) -> bool {
        matches!(self, Level::Primary | Level::Junior | Level::Special)
    }

    /// The highest grade a school of this level can have (五四学制 junior high has 4).
    pub fn max_grade(self) -> u8 {
        match self {
            Level::Primary => 6,
            Level::Junior => 4,
            Level::Senior | Level::Vocational => 3,
            Level::Undergraduate => 5,
            Level::Special => 9,
        }
    }
}

/// One term of a school's calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    /// e.g. `2026-fall`.
    pub term: String,
    pub starts: Date,
    pub report_deadline: Option<Date>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct School {
    pub id: String,
    pub name: String,
    pub jurisdiction: String,
    /// The district/county bureau the school answers to; `None` for a school the city (or the
    /// jurisdiction as a whole) manages directly, such as Zhuhai's 市属学校.
    pub area: Option<String>,
    pub level: Level,
    /// Free text a policy may read, e.g. `technical` (技工学校).
    pub kind: Option<String>,
    #[serde(default)]
    pub calendar: Vec<Term>,
}

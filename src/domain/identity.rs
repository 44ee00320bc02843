//! Citizen ID numbers (GB 11643-1999) and national student numbers (全国学籍号).
//!
//! Both parse once at the boundary into types that can only hold valid values; every rejection
//! carries a stable code (`id_card_*`, `national_id_*`) and a message a registrar understands.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::dates::Date;
use super::error::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            Gender::Male => "男",
            Gender::Female => "女",
        }
    }
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// First two digits of the address code that name a province-level region, plus 81/82/83 for
/// Hong Kong, Macau and Taiwan residents' residence permits.
const PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
];

/// The check character of the first 17 characters of an ID number (all ASCII digits).
pub fn check_character(first17: &[u8]) -> char {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(c, w)| u32::from(c - b'0') * w)
        .sum();
    char::from(CHECK_CHARS[(sum % 11) as usize])
}

/// A citizen ID number that passed every check of GB 11643.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CitizenId(String);

/// Why an identity number was refused. `code()` is stable and documented in the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    Length(usize),
    Character(char),
    Address,
    ForeignPermanentResident,
    BirthDate,
    CheckCharacter { expected: char, found: char },
    Prefix,
}

impl IdError {
    pub fn code(&self, field_prefix: &str) -> String {
        let tail = match self {
            IdError::Length(_) => "length",
            IdError::Character(_) => "character",
            IdError::Address => "address_code",
            IdError::ForeignPermanentResident => "foreign_permanent_resident",
            IdError::BirthDate => "birth_date",
            IdError::CheckCharacter { .. } => "check_character",
            IdError::Prefix => "prefix",
        };
        format!("{field_prefix}_{tail}")
    }

    pub fn message(&self) -> String {
        match self {
            IdError::Length(n) => format!("位数不对:应为 18 位,实际 {n} 位"),
            IdError::Character(c) => {
                format!("含有非法字符「{c}」:只能是数字,末位可为大写 X(请检查是否为全角字符或空格)")
            }
            IdError::Address => "前 6 位行政区划代码无效".into(),
            IdError::ForeignPermanentResident => {
                "以 9 开头的是外国人永久居留身份证,请按外籍学生办理,不作为居民身份证号录入".into()
            }
            IdError::BirthDate => "第 7–14 位出生日期不存在或晚于今天".into(),
            IdError::CheckCharacter { expected, found } => {
                format!("校验位错误:末位应为「{expected}」,实际为「{found}」,请核对号码是否录错")
            }
            IdError::Prefix => "全国学籍号应以 G、J 或 L 开头".into(),
        }
    }

    pub fn into_field_error(self, field: &str, field_prefix: &str, label: &str) -> FieldError {
        FieldError::new(
            &self.code(field_prefix),
            field,
            format!("{label}{}", self.message()),
        )
    }
}

/// Checks the 6-digit address code and the 8-digit birth date of an 18-character body.
fn check_address_and_birth(body: &[u8], today: Date) -> Result<Date, IdError> {
    if let Some(bad) = body[..14].iter().find(|c| !c.is_ascii_digit()) {
        return Err(IdError::Character(char::from(*bad)));
    }
    if body[0] == b'9' {
        return Err(IdError::ForeignPermanentResident);
    }
    let province = (body[0] - b'0') * 10 + (body[1] - b'0');
    if !PROVINCES.contains(&province) {
        return Err(IdError::Address);
    }
    let digits = |r: std::ops::Range<usize>| -> u32 {
        body[r]
            .iter()
            .fold(0, |acc, c| acc * 10 + u32::from(c - b'0'))
    };
    let year = i32::try_from(digits(6..10)).map_err(|_| IdError::BirthDate)?;
    let birth = Date::from_ymd(year, digits(10..12), digits(12..14)).ok_or(IdError::BirthDate)?;
    if birth > today {
        return Err(IdError::BirthDate);
    }
    Ok(birth)
}

/// Rejects anything but 18 ASCII characters, naming the first stray character found.
fn check_shape(s: &str) -> Result<&[u8], IdError> {
    if let Some(c) = s.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Err(IdError::Character(c));
    }
    if s.len() != 18 {
        return Err(IdError::Length(s.chars().count()));
    }
    Ok(s.as_bytes())
}

impl CitizenId {
    pub fn parse(s: &str) -> Result<CitizenId, IdError> {
        CitizenId::parse_on(s, Date::today())
    }

    /// Parses as of a given day, so tests do not depend on the clock.
    pub fn parse_on(s: &str, today: Date) -> Result<CitizenId, IdError> {
        let b = check_shape(s)?;
        check_address_and_birth(b, today)?;
        if let Some(bad) = b[14..17].iter().find(|c| !c.is_ascii_digit()) {
            return Err(IdError::Character(char::from(*bad)));
        }
        let expected = check_character(&b[..17]);
        let found = char::from(b[17]);
        if found != expected {
            return Err(IdError::CheckCharacter { expected, found });
        }
        Ok(CitizenId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn birth_date(&self) -> Date {
        let b = self.0.as_bytes();
        let n =
            |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |a, c| a * 10 + u32::from(c - b'0'));
        // INVARIANT: parse() accepted this birth date.
        Date::from_ymd(n(6..10) as i32, n(10..12), n(12..14)).unwrap_or_else(unreachable_date)
    }

    pub fn gender(&self) -> Gender {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    /// `5222************23`: the first 4 and last 2 characters, for roles that must not see it.
    pub fn masked(&self) -> String {
        mask(&self.0, 4, 2)
    }
}

#[cold]
fn unreachable_date() -> Date {
    Date::from_ymd(1900, 1, 1).unwrap_or_else(|| panic!("1900-01-01 is a date"))
}

/// Masks the middle of a string, keeping `head` and `tail` characters.
pub fn mask(s: &str, head: usize, tail: usize) -> String {
    let n = s.chars().count();
    if n <= head + tail {
        return "*".repeat(n);
    }
    s.chars()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { c } else { '*' })
        .collect()
}

impl fmt::Debug for CitizenId {
    /// Debug output (and so any log line) shows only the masked form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CitizenId({})", self.masked())
    }
}

impl TryFrom<String> for CitizenId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        CitizenId::parse(&s).map_err(|e| e.message())
    }
}

impl From<CitizenId> for String {
    fn from(c: CitizenId) -> String {
        c.0
    }
}

/// A national student number (全国学籍号): `G`/`J` + an ID-encoded body, or `L` + a temporary body.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NationalNumber(String);

impl NationalNumber {
    pub fn parse(s: &str) -> Result<NationalNumber, IdError> {
        NationalNumber::parse_on(s, Date::today())
    }

    pub fn parse_on(s: &str, today: Date) -> Result<NationalNumber, IdError> {
        let mut chars = s.chars();
        let prefix = chars.next().ok_or(IdError::Length(0))?;
        let body = chars.as_str();
        match prefix {
            'G' | 'J' => {
                CitizenId::parse_on(body, today).map_err(|e| match e {
                    IdError::Length(n) => IdError::Length(n + 1),
                    other => other,
                })?;
            }
            'L' => {
                let b = check_shape(body).map_err(|e| match e {
                    IdError::Length(n) => IdError::Length(n + 1),
                    other => other,
                })?;
                check_address_and_birth(b, today)?;
            }
            c if c.is_ascii_alphanumeric() => return Err(IdError::Prefix),
            c => return Err(IdError::Character(c)),
        }
        Ok(NationalNumber(s.to_owned()))
    }

    /// The formal number of a citizen: `G` + the ID number.
    pub fn from_citizen_id(id: &CitizenId) -> NationalNumber {
        NationalNumber(format!("G{}", id.as_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        mask(&self.0, 5, 2)
    }

    /// A temporary `L` number, to be upgraded to `G` or `J`; equal to `G` for all business.
    pub fn is_temporary(&self) -> bool {
        self.0.starts_with('L')
    }
}

impl fmt::Debug for NationalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NationalNumber({})", self.masked())
    }
}

impl TryFrom<String> for NationalNumber {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        NationalNumber::parse(&s).map_err(|e| e.message())
    }
}

impl From<NationalNumber> for String {
    fn from(c: NationalNumber) -> String {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::from_ymd(2026, 11, 28).expect("date")
    }

    fn code(s: &str) -> String {
        CitizenId::parse_on(s, today())
            .expect_err("should fail")
            .code("id_card")
    }

    #[test]
    fn the_documented_examples_validate() {
        let a = CitizenId::parse_on("11010519491231002X", today()).expect("valid");
        assert_eq!(a.gender(), Gender::Female);
        assert_eq!(a.birth_date().to_string(), "1949-12-31");
        let b = CitizenId::parse_on("440524188001010014", today()).expect("valid");
        assert_eq!(b.gender(), Gender::Male);
    }

    #[test]
    fn each_failure_has_its_code() {
        assert_eq!(code("11010519491231002"), "id_card_length");
        assert_eq!(code("11010519491231002Ｘ"), "id_card_character");
        assert_eq!(code("11010519491231 02X"), "id_card_character");
        assert_eq!(code("110105194912310021"), "id_card_check_character");
        assert_eq!(
            code("990105194912310021"),
            "id_card_foreign_permanent_resident"
        );
        assert_eq!(code("190105194912310021"), "id_card_address_code");
        assert_eq!(code("110105202602300021"), "id_card_birth_date");
        assert_eq!(code("110105203001010021"), "id_card_birth_date");
    }

    #[test]
    fn check_character_matches_gb11643() {
        assert_eq!(check_character(b"11010519491231002"), 'X');
        assert_eq!(check_character(b"44052418800101001"), '4');
    }

    #[test]
    fn national_numbers() {
        assert!(NationalNumber::parse_on("G11010519491231002X", today()).is_ok());
        assert!(NationalNumber::parse_on("J11010519491231002X", today()).is_ok());
        assert!(NationalNumber::parse_on("L11010519491231AB9Z", today()).is_ok());
        let bad = |s| {
            NationalNumber::parse_on(s, today())
                .expect_err("bad")
                .code("national_id")
        };
        assert_eq!(bad("X11010519491231002X"), "national_id_prefix");
        assert_eq!(bad("G110105194912310021"), "national_id_check_character");
        assert_eq!(bad("G1101051949123100"), "national_id_length");
        assert_eq!(bad("L11010519491331AB9Z"), "national_id_birth_date");
    }

    #[test]
    fn masking_keeps_only_the_ends() {
        let id = CitizenId::parse_on("11010519491231002X", today()).expect("valid");
        assert_eq!(id.masked(), "1101************2X");
        assert_eq!(format!("{id:?}"), "CitizenId(1101************2X)");
    }
}

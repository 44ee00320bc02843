//! GB 11643 citizen ID numbers and G/J/L national student numbers: parsing never panics, every
//! rejection has a stable code, and whatever is accepted re-validates identically.
//!
//! Input: two bytes pick "today" (1900-01-01 + n days), the rest is the candidate text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xueji::domain::Date;
use xueji::domain::identity::{CitizenId, IdError, NationalNumber, check_character, mask};

const CODES: &[&str] = &[
    "length",
    "character",
    "address_code",
    "foreign_permanent_resident",
    "birth_date",
    "check_character",
    "prefix",
];

fn coded(e: &IdError, prefix: &str) {
    let code = e.code(prefix);
    let tail = code
        .strip_prefix(prefix)
        .and_then(|t| t.strip_prefix('_'))
        .unwrap_or_else(|| panic!("code {code} lacks prefix {prefix}"));
    assert!(CODES.contains(&tail), "unknown code {code}");
    assert!(!e.message().is_empty());
    let fe = e.clone().into_field_error("f", prefix, "标签");
    assert_eq!(fe.code, code);
}

fn check_citizen(s: &str, today: Date) {
    match CitizenId::parse_on(s, today) {
        Ok(id) => {
            let b = id.as_str().as_bytes();
            assert_eq!(id.as_str(), s);
            assert_eq!(b.len(), 18);
            assert!(b[..17].iter().all(u8::is_ascii_digit));
            assert_eq!(char::from(b[17]), check_character(&b[..17]));
            assert!(id.birth_date() <= today);
            assert_eq!(id.birth_date().to_string().replace('-', ""), s[6..14]);
            assert_eq!(id.gender().as_str() == "male", (b[16] - b'0') % 2 == 1);
            assert_eq!(CitizenId::parse_on(id.as_str(), today).as_ref(), Ok(&id));
            assert_eq!(id.masked().chars().count(), 18);
            assert!(!format!("{id:?}").contains(&s[4..16]));
            let g = NationalNumber::from_citizen_id(&id);
            assert_eq!(NationalNumber::parse_on(g.as_str(), today).as_ref(), Ok(&g));
            // What the store writes must read back (serde validates against the real clock).
            if id.birth_date() <= Date::today() {
                let json = serde_json::to_string(&id).expect("serializes");
                let back: CitizenId = serde_json::from_str(&json).expect("reads back");
                assert_eq!(back, id);
            }
        }
        Err(e) => coded(&e, "id_card"),
    }
}

fn check_national(s: &str, today: Date) {
    let direct = NationalNumber::parse_on(s, today);
    match &direct {
        Ok(n) => {
            assert_eq!(n.as_str(), s);
            assert_eq!(s.len(), 19);
            assert!(matches!(s.as_bytes()[0], b'G' | b'J' | b'L'));
            assert_eq!(n.is_temporary(), s.starts_with('L'));
            assert_eq!(NationalNumber::parse_on(n.as_str(), today).as_ref(), Ok(n));
            if !n.is_temporary() {
                assert!(CitizenId::parse_on(&s[1..], today).is_ok());
            }
            assert_eq!(n.masked().chars().count(), 19);
        }
        Err(e) => coded(e, "national_id"),
    }
    // `G` + a citizen ID is accepted exactly when the ID is, with the same reason otherwise.
    for prefix in ['G', 'J'] {
        let with = format!("{prefix}{s}");
        let a = NationalNumber::parse_on(&with, today);
        let b = CitizenId::parse_on(s, today);
        match (&a, &b) {
            (Ok(_), Ok(_)) => {}
            (Err(IdError::Length(n)), Err(IdError::Length(m))) => assert_eq!(*n, m + 1),
            (Err(x), Err(y)) => assert_eq!(x, y),
            _ => panic!("{with:?}: national {a:?} vs citizen {b:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let days = i64::from(u16::from_le_bytes([data[0], data[1]])) * 3;
    let base = Date::from_ymd(1900, 1, 1).expect("date");
    let today = base.add_days(days).expect("in range");
    let text = String::from_utf8_lossy(&data[2..]);
    check_citizen(&text, today);
    check_national(&text, today);
    let n = text.chars().count();
    assert_eq!(mask(&text, 4, 2).chars().count(), n);
});

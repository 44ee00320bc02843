//! OpenAPI schemas of the enums the API takes, generated from the enums themselves (strum
//! names, which match their serde names: the test below checks it), so that the document lists
//! exactly the values the server accepts. The domain types stay free of utoipa.

use strum::IntoEnumIterator;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use crate::auth::Role;
use crate::domain::{
    ApprovalStep, DocumentKind, Effect, HospitalGrade, IssuerLevel, Level, Reason, RequestStatus,
    Status, TransitionKind,
};
use crate::engine::roster::RosterKind;
use crate::exchange::FileFormat;

/// A string schema listing every variant of `E`.
pub fn enum_of<E: IntoEnumIterator + Into<&'static str>>() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(E::iter().map(Into::<&'static str>::into)))
        .build()
}

pub fn role() -> Object {
    enum_of::<Role>()
}
pub fn level() -> Object {
    enum_of::<Level>()
}
pub fn status() -> Object {
    enum_of::<Status>()
}
pub fn request_status() -> Object {
    enum_of::<RequestStatus>()
}
pub fn approval_step() -> Object {
    enum_of::<ApprovalStep>()
}
pub fn transition_kind() -> Object {
    enum_of::<TransitionKind>()
}
pub fn reason() -> Object {
    enum_of::<Reason>()
}
pub fn document_kind() -> Object {
    enum_of::<DocumentKind>()
}
pub fn issuer_level() -> Object {
    enum_of::<IssuerLevel>()
}
pub fn hospital_grade() -> Object {
    enum_of::<HospitalGrade>()
}
pub fn effect() -> Object {
    enum_of::<Effect>()
}
/// `Gender` has two values and no strum names: listed from its own `as_str`.
pub fn gender() -> Object {
    use crate::domain::Gender;
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([Gender::Male.as_str(), Gender::Female.as_str()]))
        .build()
}
pub fn roster_kind() -> Object {
    enum_of::<RosterKind>()
}
pub fn file_format() -> Object {
    enum_of::<FileFormat>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    fn every_name_deserializes<E: IntoEnumIterator + Into<&'static str> + DeserializeOwned>() {
        for v in E::iter() {
            let name: &'static str = v.into();
            assert!(
                serde_json::from_value::<E>(serde_json::json!(name)).is_ok(),
                "{name} is listed in the OpenAPI document but serde refuses it"
            );
        }
    }

    #[test]
    fn the_listed_values_are_the_accepted_values() {
        every_name_deserializes::<Role>();
        every_name_deserializes::<Level>();
        every_name_deserializes::<Status>();
        every_name_deserializes::<RequestStatus>();
        every_name_deserializes::<ApprovalStep>();
        every_name_deserializes::<RosterKind>();
        every_name_deserializes::<FileFormat>();
        every_name_deserializes::<TransitionKind>();
        every_name_deserializes::<Reason>();
        every_name_deserializes::<DocumentKind>();
        every_name_deserializes::<IssuerLevel>();
        every_name_deserializes::<HospitalGrade>();
        every_name_deserializes::<Effect>();
    }
}

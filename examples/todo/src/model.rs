//! The demo's data and its exact JSON: lists with share tokens, and todo items.
//!
//! Owns the wire shapes of the 2011 Rails app (bare objects, integer ids, epoch-millisecond
//! timestamps, `longdesc`/`list_id` left out) and the lenient reading of request bodies
//! (only `shortdesc` and `isdone` are read; unknown fields are ignored). No storage, no HTTP.

use serde::Serialize;
use serde_json::Value;

/// A todo list, reachable by anyone who knows its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct List {
    /// Row id; items point at it.
    pub id: i64,
    /// The share token in the URL (`/{token}`).
    pub token: String,
}

impl List {
    /// The Pusher channel of this list, named like the Rails app's `List#channel_name`.
    pub fn channel_name(&self) -> String {
        format!("list-production-{}", self.token)
    }
}

/// One todo item, serialized exactly as the Rails app rendered it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Integer id, unique across lists.
    pub id: i64,
    /// The text of the todo.
    pub shortdesc: String,
    /// Whether it is done.
    pub isdone: bool,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
    /// Last update time, epoch milliseconds.
    pub updated_at: i64,
}

/// The fields a create or update request may set; `None` leaves the field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemChanges {
    /// New text, if given.
    pub shortdesc: Option<String>,
    /// New done flag, if given.
    pub isdone: Option<bool>,
}

/// Why a request body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all.
    #[error("request body is not valid JSON: {0}")]
    Malformed(String),
    /// JSON, but not an object.
    #[error("request body must be a JSON object")]
    NotAnObject,
    /// A known field with the wrong type.
    #[error("field `{0}` has the wrong type")]
    WrongType(&'static str),
}

impl ItemChanges {
    /// Reads `shortdesc` (string or null) and `isdone` (boolean or null) from a JSON object
    /// body, ignoring every other key (the 2011 client sends the whole model back).
    pub fn from_json(body: &[u8]) -> Result<Self, BodyError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| BodyError::Malformed(e.to_string()))?;
        let object = value.as_object().ok_or(BodyError::NotAnObject)?;
        let shortdesc = match object.get("shortdesc") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(BodyError::WrongType("shortdesc")),
        };
        let isdone = match object.get("isdone") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(BodyError::WrongType("isdone")),
        };
        Ok(Self { shortdesc, isdone })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_json_is_bare_with_integer_id_and_millis() {
        let item = Item {
            id: 1,
            shortdesc: "buy milk".into(),
            isdone: false,
            created_at: 1321012345000,
            updated_at: 1321012345000,
        };
        assert_eq!(
            serde_json::to_string(&item).ok().as_deref(),
            Some(
                r#"{"id":1,"shortdesc":"buy milk","isdone":false,"created_at":1321012345000,"updated_at":1321012345000}"#
            )
        );
    }

    #[test]
    fn reads_known_fields_and_ignores_the_rest() {
        let body =
            br#"{"id":4,"shortdesc":"x","isdone":true,"longdesc":null,"list_id":9,"created_at":1}"#;
        assert_eq!(
            ItemChanges::from_json(body),
            Ok(ItemChanges {
                shortdesc: Some("x".into()),
                isdone: Some(true)
            })
        );
        assert_eq!(ItemChanges::from_json(b"{}"), Ok(ItemChanges::default()));
    }

    #[test]
    fn refuses_bad_bodies() {
        assert!(matches!(
            ItemChanges::from_json(b"{nope"),
            Err(BodyError::Malformed(_))
        ));
        assert_eq!(ItemChanges::from_json(b"[1]"), Err(BodyError::NotAnObject));
        assert_eq!(
            ItemChanges::from_json(br#"{"isdone":"yes"}"#),
            Err(BodyError::WrongType("isdone"))
        );
    }

    #[test]
    fn channel_name_follows_the_rails_app() {
        let list = List {
            id: 1,
            token: "AbC123xyz".into(),
        };
        assert_eq!(list.channel_name(), "list-production-AbC123xyz");
    }
}

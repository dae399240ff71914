//! Strict JSON request bodies: every problem is a 400 that names the field.

use axum::body::Bytes;
use matbakh_core::CoreError;
use matbakh_core::labels::{CustomMetadata, Labels, Tag, Visibility};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A JSON object body with only the `allowed` keys.
pub struct JsonObject(Map<String, Value>);

impl JsonObject {
    pub fn parse(bytes: &Bytes, allowed: &[&'static str]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_field("body", format!("body: not valid JSON ({e})")))?;
        let Value::Object(map) = value else {
            return Err(ApiError::bad_field("body", "body: must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let shown: String = unknown.chars().take(40).collect();
            return Err(ApiError::bad_field("body", format!("body: unknown field {shown:?}")));
        }
        Ok(JsonObject(map))
    }

    pub fn str(&self, field: &'static str) -> Result<&str, ApiError> {
        self.opt_str(field)?.ok_or_else(|| ApiError::bad_field(field, format!("{field}: is required")))
    }

    pub fn opt_str(&self, field: &'static str) -> Result<Option<&str>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::bad_field(field, format!("{field}: must be a string"))),
        }
    }

    pub fn opt_bool(&self, field: &'static str) -> Result<Option<bool>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::bad_field(field, format!("{field}: must be true or false"))),
        }
    }

    pub fn array(&self, field: &'static str) -> Result<&[Value], ApiError> {
        self.opt_array(field)?.ok_or_else(|| ApiError::bad_field(field, format!("{field}: is required")))
    }

    pub fn opt_array(&self, field: &'static str) -> Result<Option<&[Value]>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(ApiError::bad_field(field, format!("{field}: must be an array"))),
        }
    }

    /// A nested object with only the `allowed` keys.
    pub fn opt_object(&self, field: &'static str, allowed: &[&'static str]) -> Result<Option<JsonObject>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => {
                if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
                    let shown: String = unknown.chars().take(40).collect();
                    return Err(ApiError::bad_field(field, format!("{field}: unknown field {shown:?}")));
                }
                Ok(Some(JsonObject(map.clone())))
            }
            Some(_) => Err(ApiError::bad_field(field, format!("{field}: must be an object"))),
        }
    }

    /// A nested object of any keys, each a string (e.g. part number → checksum).
    pub fn opt_string_map(&self, field: &'static str) -> Result<Option<Vec<(&str, &str)>>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k.as_str(), v.as_str())),
                    _ => Err(ApiError::bad_field(field, format!("{field}: values must be strings"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ApiError::bad_field(field, format!("{field}: must be an object"))),
        }
    }

    /// An array of tags (`tags`, `addTags`, ...); none if absent.
    pub fn tags(&self, field: &'static str) -> Result<Vec<Tag>, ApiError> {
        let items = self.opt_array(field)?.unwrap_or_default();
        let tag = |v: &Value| {
            let raw = v.as_str().ok_or_else(|| ApiError::bad_field(field, format!("{field}: tags are strings")))?;
            Tag::parse(raw).map_err(|e| match e {
                CoreError::Invalid { message, .. } => ApiError::bad_field(field, format!("{field}: {message}")),
                other => ApiError::from(other),
            })
        };
        items.iter().map(tag).collect()
    }

    /// `visibility`, if given.
    pub fn visibility(&self) -> Result<Option<Visibility>, ApiError> {
        Ok(self.opt_str("visibility")?.map(Visibility::parse).transpose()?)
    }

    /// `metadata` (an object of strings), if given.
    pub fn metadata(&self) -> Result<Option<CustomMetadata>, ApiError> {
        Ok(self.opt_string_map("metadata")?.map(CustomMetadata::parse).transpose()?)
    }

    /// What an upload request says of its file: `visibility`, `tags`, `metadata`, each optional
    /// (a private file without tags or metadata).
    pub fn labels(&self) -> Result<Labels, ApiError> {
        let metadata = self.metadata()?.unwrap_or_default();
        Ok(Labels::new(self.visibility()?.unwrap_or_default(), &self.tags("tags")?, metadata)?)
    }

    /// Whether the body has `field` at all (for fields that are refused with a reason).
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    pub fn u64(&self, field: &'static str) -> Result<u64, ApiError> {
        self.opt_u64(field)?.ok_or_else(|| ApiError::bad_field(field, format!("{field}: is required")))
    }

    pub fn opt_u64(&self, field: &'static str) -> Result<Option<u64>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::bad_field(field, format!("{field}: must be a whole number"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<JsonObject, ApiError> {
        JsonObject::parse(&Bytes::from(s.to_owned()), &["name", "size"])
    }

    #[test]
    fn every_problem_names_its_field() {
        assert_eq!(parse("{").err().unwrap().field, Some("body"));
        assert_eq!(parse("[]").err().unwrap().field, Some("body"));
        assert!(parse(r#"{"evil": 1}"#).err().unwrap().message.contains("evil"));
        let o = parse(r#"{"name": 3, "size": -1}"#).unwrap();
        assert_eq!(o.str("name").err().unwrap().field, Some("name"));
        assert_eq!(o.u64("size").err().unwrap().field, Some("size"));
        let o = parse(r#"{"size": 1.5}"#).unwrap();
        assert_eq!(o.u64("size").err().unwrap().field, Some("size"));
        assert_eq!(o.str("name").err().unwrap().message, "name: is required");
        let o = parse(r#"{"name": "a", "size": 7}"#).unwrap();
        assert_eq!((o.str("name").unwrap(), o.u64("size").unwrap()), ("a", 7));
    }
}

//! DynamoDB Streams records (as Lambda hands them over, `NEW_AND_OLD_IMAGES`): the images back
//! as items, and which row of ours they are (a file, an export job, a migration run), read
//! with the same parsers as the table's own reads.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use matbakh_app::live::Change;
use matbakh_core::clock::iso_millis;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::AwsError;
use crate::ledger::{RUNS_PK, RunRecord, parse_run};
use crate::schema::{FILE, Item, PK, SK};

/// One record of a table's stream.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    /// The record's id (`eventID`): the same on every delivery of it.
    pub id: String,
    /// Its place in the shard (`SequenceNumber`): what a batch reports as its first failure.
    pub sequence: String,
    /// When the write was made (RFC 3339, milliseconds).
    pub at: String,
    pub keys: Item,
    pub old: Option<Item>,
    pub new: Option<Item>,
}

/// Which row of ours a record is about (one record's, briefly: its size does not matter).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Row {
    /// A file row, an export job that is there after the write, or an account an erase closed:
    /// what the live updates tell of ([`matbakh_app::live`]).
    Change(Change),
    /// A migration run's item (`None`: removed).
    Run(Option<RunRecord>),
    /// Anything else (tags, usage counters but an erase's close, sessions, an export job's
    /// removal by TTL, ...): no news in itself.
    Other,
}

fn bad(what: impl Into<String>) -> AwsError {
    AwsError::Corrupt(format!("stream record: {}", what.into()))
}

/// One attribute from its JSON form (`{"S": "..."}`, `{"N": "1"}`, `{"M": {...}}`, ...).
pub fn attribute(v: &Value) -> Result<AttributeValue, AwsError> {
    let (tag, inner) = v
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
        .ok_or_else(|| bad("an attribute is not {TYPE: value}"))?;
    let text = |v: &Value| v.as_str().map(str::to_owned).ok_or_else(|| bad(format!("{tag} is not a string")));
    let texts = |v: &Value| -> Result<Vec<String>, AwsError> {
        v.as_array().ok_or_else(|| bad(format!("{tag} is not a list")))?.iter().map(text).collect()
    };
    let blob = |v: &Value| -> Result<Blob, AwsError> {
        let b64 = text(v)?;
        base64::engine::general_purpose::STANDARD.decode(b64).map(Blob::new).map_err(|_| bad("B is not Base64"))
    };
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(text(inner)?),
        "N" => AttributeValue::N(text(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or_else(|| bad("BOOL is not a boolean"))?),
        "NULL" => AttributeValue::Null(true),
        "B" => AttributeValue::B(blob(inner)?),
        "SS" => AttributeValue::Ss(texts(inner)?),
        "NS" => AttributeValue::Ns(texts(inner)?),
        "BS" => AttributeValue::Bs(
            inner.as_array().ok_or_else(|| bad("BS is not a list"))?.iter().map(blob).collect::<Result<_, _>>()?,
        ),
        "L" => AttributeValue::L(
            inner.as_array().ok_or_else(|| bad("L is not a list"))?.iter().map(attribute).collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(image(inner)?),
        other => return Err(bad(format!("unknown attribute type {other}"))),
    })
}

/// An item from its JSON form (an image, or `Keys`).
pub fn image(v: &Value) -> Result<Item, AwsError> {
    v.as_object()
        .ok_or_else(|| bad("an image is not an object"))?
        .iter()
        .map(|(k, v)| Ok((k.clone(), attribute(v)?)))
        .collect::<Result<HashMap<_, _>, AwsError>>()
}

impl StreamRecord {
    /// A record of a Lambda DynamoDB stream event.
    pub fn parse(v: &Value) -> Result<StreamRecord, AwsError> {
        let d = &v["dynamodb"];
        let optional = |field: &str| d.get(field).filter(|v| !v.is_null()).map(image).transpose();
        let seconds = d["ApproximateCreationDateTime"].as_f64().ok_or_else(|| bad("no ApproximateCreationDateTime"))?;
        let at = OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9) as i128)
            .map_err(|_| bad("a time out of range"))?;
        Ok(StreamRecord {
            id: v["eventID"].as_str().ok_or_else(|| bad("no eventID"))?.to_owned(),
            sequence: d["SequenceNumber"].as_str().ok_or_else(|| bad("no SequenceNumber"))?.to_owned(),
            at: iso_millis(at),
            keys: image(&d["Keys"])?,
            old: optional("OldImage")?,
            new: optional("NewImage")?,
        })
    }

    fn key(&self, name: &str) -> &str {
        self.keys.get(name).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default()
    }

    /// Both images, read back by `parse`.
    #[allow(clippy::type_complexity)]
    fn both<T>(&self, parse: fn(&Item) -> Result<T, AwsError>) -> Result<(Option<T>, Option<T>), AwsError> {
        Ok((self.old.as_ref().map(parse).transpose()?, self.new.as_ref().map(parse).transpose()?))
    }

    /// Which row it is, with its images read back.
    pub fn row(&self) -> Result<Row, AwsError> {
        let (pk, sk) = (self.key(PK), self.key(SK));
        Ok(if pk.starts_with("FILE#") && sk == FILE {
            let (old, new) = self.both(crate::files::parse_details)?;
            Row::Change(Change::File { old, new })
        } else if pk.starts_with("EXPORT#") && sk == "EXPORT" {
            match self.both(crate::export::parse_job)? {
                (old, Some(new)) => Row::Change(Change::Export { old, new }),
                (_, None) => Row::Other,
            }
        } else if pk == RUNS_PK {
            Row::Run(self.new.as_ref().map(parse_run).transpose()?)
        } else if let Some(user) = pk.strip_prefix("USER#").filter(|_| sk == "USAGE") {
            // An erase closes the account: its usage item takes `closedAt` (the usage
            // counters' other writes, and a closed account's, are no news).
            let closed = |item: &Option<Item>| item.as_ref().and_then(|i| i.get(crate::usage::CLOSED_AT)).cloned();
            match (closed(&self.old), closed(&self.new)) {
                (None, Some(AttributeValue::N(at))) => {
                    let user = matbakh_core::ids::UserId::parse(user).map_err(|e| bad(e.to_string()))?;
                    let at: i64 = at.parse().map_err(|_| bad("closedAt is not a number"))?;
                    let at = OffsetDateTime::from_unix_timestamp(at).map_err(|_| bad("closedAt is out of range"))?;
                    Row::Change(Change::AccountErased { user, erased_at: iso_millis(at) })
                }
                _ => Row::Other,
            }
        } else {
            Row::Other
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_attribute_type_reads_back() {
        let item = image(&json!({
            "s": {"S": "x"}, "n": {"N": "12.5"}, "b": {"B": "AAE="}, "t": {"BOOL": true}, "z": {"NULL": true},
            "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1"]}, "bs": {"BS": ["AA=="]},
            "l": {"L": [{"S": "y"}, {"N": "2"}]}, "m": {"M": {"k": {"S": "v"}}}
        }))
        .unwrap();
        assert_eq!(item["s"], AttributeValue::S("x".into()));
        assert_eq!(item["n"], AttributeValue::N("12.5".into()));
        assert_eq!(item["b"], AttributeValue::B(Blob::new(vec![0, 1])));
        assert_eq!(item["t"], AttributeValue::Bool(true));
        assert_eq!(item["ss"], AttributeValue::Ss(vec!["a".into(), "b".into()]));
        assert_eq!(item["l"], AttributeValue::L(vec![AttributeValue::S("y".into()), AttributeValue::N("2".into())]));
        assert_eq!(item["m"], AttributeValue::M(HashMap::from([("k".into(), AttributeValue::S("v".into()))])));
        for broken in [json!({"a": {"S": 1}}), json!({"a": {"X": "1"}}), json!({"a": {"S": "1", "N": "1"}}), json!([1])]
        {
            assert!(image(&broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn records_name_their_rows() {
        let record = |keys: Value, new: Value| {
            StreamRecord::parse(&json!({
                "eventID": "e1", "eventName": "MODIFY",
                "dynamodb": {"ApproximateCreationDateTime": 1_764_936_000.5, "Keys": keys, "NewImage": new,
                             "SequenceNumber": "100", "StreamViewType": "NEW_AND_OLD_IMAGES"}
            }))
            .unwrap()
        };
        let tag = record(json!({"pk": {"S": "FILE#x"}, "sk": {"S": "TAG#menu"}}), json!({"pk": {"S": "FILE#x"}}));
        assert!(matches!(tag.row().unwrap(), Row::Other));
        assert_eq!(
            (tag.id.as_str(), tag.sequence.as_str(), tag.at.as_str()),
            ("e1", "100", "2025-12-05T12:00:00.500Z")
        );
        assert!(tag.old.is_none());
        let broken_file = record(json!({"pk": {"S": "FILE#x"}, "sk": {"S": "FILE"}}), json!({"pk": {"S": "FILE#x"}}));
        assert!(broken_file.row().is_err(), "a file row that does not read back is an error, not silence");
    }

    /// An erase's close of the account (the usage item takes `closedAt`) is the account's
    /// erasure; the usage counters' other writes are not news.
    #[test]
    fn an_account_closed_by_an_erase_is_its_erasure() {
        let usage = |old: Option<Value>, new: Value| {
            let mut d = json!({"ApproximateCreationDateTime": 1_764_936_000.5,
                               "Keys": {"pk": {"S": "USER#auth0|u-1"}, "sk": {"S": "USAGE"}}, "NewImage": new,
                               "SequenceNumber": "100", "StreamViewType": "NEW_AND_OLD_IMAGES"});
            if let Some(old) = old {
                d["OldImage"] = old;
            }
            StreamRecord::parse(&json!({"eventID": "e1", "eventName": "MODIFY", "dynamodb": d})).unwrap().row().unwrap()
        };
        let counting = json!({"charged": {"N": "10"}});
        let closed = json!({"closedAt": {"N": "1764936000"}});
        match usage(Some(counting.clone()), closed.clone()) {
            Row::Change(Change::AccountErased { user, erased_at }) => {
                assert_eq!((user.as_str(), erased_at.as_str()), ("auth0|u-1", "2025-12-05T12:00:00.000Z"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(usage(None, closed.clone()), Row::Change(Change::AccountErased { .. })), "no usage before");
        assert!(matches!(usage(Some(counting.clone()), json!({"charged": {"N": "20"}})), Row::Other));
        assert!(matches!(usage(Some(closed.clone()), closed), Row::Other), "closed before: told once");
    }
}

//! Object events as they reach a consumer: S3 event records, inside an SNS notification,
//! inside an SQS message body.
//!
//! Parsed leniently, because the two producers differ: AWS sends `userIdentity`,
//! `requestParameters`, `responseElements`, `sequencer` and `versionId`; moto sends none of
//! them. Keys arrive form-encoded (`+` is a space, `/` may be `%2F`). `s3:TestEvent` (sent when
//! notifications are configured) carries no records.

use serde::Deserialize;

use crate::error::CoreError;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectChange {
    Created,
    /// A permanent delete of a version.
    Removed,
    /// A delete marker on a versioned bucket (a soft delete).
    DeleteMarkerCreated,
    /// The lifecycle moved the object to another storage class (`LifecycleTransition`).
    Transitioned,
    /// A restore of an archived object was asked for (`ObjectRestore:Post`).
    RestoreStarted,
    /// The restored copy is there (`ObjectRestore:Completed`), until
    /// [`ObjectEvent::restored_until`].
    RestoreCompleted,
    /// The restored copy lapsed (`ObjectRestore:Delete`): only the archived object is left.
    RestoreExpired,
}

/// One object event, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    pub change: ObjectChange,
    /// The full event name, e.g. `ObjectCreated:CompleteMultipartUpload`.
    pub name: String,
    pub bucket: String,
    /// The key, URL-decoded.
    pub key: String,
    pub size: Option<u64>,
    pub version_id: Option<String>,
    /// Orders events for one key (AWS only).
    pub sequencer: Option<String>,
    pub event_time: Option<String>,
    /// Until when a restored copy can be read (`ObjectRestore:Completed` only).
    pub restored_until: Option<time::OffsetDateTime>,
}

impl ObjectEvent {
    /// How long before `now` the event happened (S3's `eventTime`), in milliseconds: what a
    /// file waited in queues and took to process once it arrived. `None` without a readable
    /// time, or one after `now` (another clock's).
    pub fn age_millis(&self, now: time::OffsetDateTime) -> Option<u64> {
        let at =
            time::OffsetDateTime::parse(self.event_time.as_deref()?, &time::format_description::well_known::Rfc3339)
                .ok()?;
        u64::try_from((now - at).whole_milliseconds()).ok()
    }

    /// A string that sorts like the events for one key happened (DECISIONS 15), stored on the
    /// row so an older event never overwrites newer state. S3's `sequencer` is a hex number
    /// whose strings may differ in length: the shorter is padded with zeros on the right
    /// before comparing. Without one (moto), the event time decides; without both, `None`.
    pub fn order(&self) -> Option<String> {
        if let Some(seq) = self.sequencer.as_deref().filter(|s| !s.is_empty() && s.len() <= 64) {
            return Some(format!("s:{:0<64}", seq.to_ascii_uppercase()));
        }
        self.event_time.as_deref().filter(|t| !t.is_empty()).map(|t| format!("t:{t}"))
    }
}

#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "Message")]
    message: String,
}

#[derive(Deserialize)]
struct S3Notification {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_name: String,
    event_time: Option<String>,
    s3: S3Entity,
    glacier_event_data: Option<GlacierEventData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GlacierEventData {
    restore_event_data: Option<RestoreEventData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestoreEventData {
    lifecycle_restoration_expiry_time: Option<String>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    key: String,
    size: Option<u64>,
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// Decodes an S3 event key: `+` is a space, then percent-decoding.
pub fn decode_key(raw: &str) -> Result<String, CoreError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| CoreError::invalid("key", "is not UTF-8 after decoding"))
}

/// The object events in one SQS message body (an SNS notification, or a raw S3 notification
/// when the subscription delivers raw). A test event gives none.
pub fn parse_sqs_body(body: &str) -> Result<Vec<ObjectEvent>, CoreError> {
    let bad = |what: &str, e: serde_json::Error| CoreError::invalid("body", format!("{what}: {e}"));
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| bad("not JSON", e))?;
    let inner = if value.get("Type").is_some() && value.get("Message").is_some() {
        let envelope: SnsEnvelope = serde_json::from_value(value).map_err(|e| bad("SNS envelope", e))?;
        if envelope.kind.as_deref() != Some("Notification") {
            return Ok(Vec::new());
        }
        serde_json::from_str(&envelope.message).map_err(|e| bad("SNS message", e))?
    } else {
        value
    };
    if inner.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    let notification: S3Notification = serde_json::from_value(inner).map_err(|e| bad("S3 notification", e))?;
    notification
        .records
        .into_iter()
        .map(|r| {
            let change = if r.event_name.starts_with("ObjectCreated:") {
                ObjectChange::Created
            } else if r.event_name == "ObjectRemoved:DeleteMarkerCreated"
                || r.event_name == "LifecycleExpiration:DeleteMarkerCreated"
            {
                ObjectChange::DeleteMarkerCreated
            } else if r.event_name.starts_with("ObjectRemoved:") || r.event_name == "LifecycleExpiration:Delete" {
                ObjectChange::Removed
            } else if r.event_name == "LifecycleTransition" {
                ObjectChange::Transitioned
            } else if r.event_name == "ObjectRestore:Post" {
                ObjectChange::RestoreStarted
            } else if r.event_name == "ObjectRestore:Completed" {
                ObjectChange::RestoreCompleted
            } else if r.event_name == "ObjectRestore:Delete" {
                ObjectChange::RestoreExpired
            } else {
                return Err(CoreError::invalid("eventName", format!("{} is not an object event", r.event_name)));
            };
            Ok(ObjectEvent {
                change,
                name: r.event_name,
                bucket: r.s3.bucket.name,
                key: decode_key(&r.s3.object.key)?,
                size: r.s3.object.size,
                version_id: r.s3.object.version_id.filter(|v| !v.is_empty()),
                sequencer: r.s3.object.sequencer,
                event_time: r.event_time,
                restored_until: r
                    .glacier_event_data
                    .and_then(|g| g.restore_event_data)
                    .and_then(|d| d.lifecycle_restoration_expiry_time)
                    .and_then(|t| time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqs_body(fixture: &str) -> String {
        let path =
            std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../events").join(fixture);
        let event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        event["Records"][0]["body"].as_str().unwrap().to_owned()
    }

    #[test]
    fn moto_records_parse_without_the_fields_moto_leaves_out() {
        let events = parse_sqs_body(&sqs_body("sqs-object-created-moto.json")).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.change, ObjectChange::Created);
        assert_eq!(e.key, "users/u 1/f+x/a b.jpg");
        assert_eq!((e.size, e.version_id.as_deref(), e.sequencer.as_deref()), (Some(5), None, None));
    }

    #[test]
    fn aws_records_parse_with_version_and_sequencer() {
        let events = parse_sqs_body(&sqs_body("sqs-object-created-aws.json")).unwrap();
        let e = &events[0];
        assert_eq!(e.name, "ObjectCreated:CompleteMultipartUpload");
        assert_eq!(e.key, "users/demo-user/0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b/Marienkäfer im Gras.jpg");
        assert_eq!(e.version_id.as_deref(), Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"));
        assert_eq!(e.sequencer.as_deref(), Some("0055AED6DCD90281E5"));
        assert_eq!(e.size, Some(351588));
    }

    #[test]
    fn archive_tier_events_parse_with_the_restored_copys_expiry() {
        let record = |name: &str, glacier: &str| {
            format!(
                r#"{{"Records": [{{"eventName": "{name}", "eventTime": "2026-12-05T10:00:00.000Z",
                  "s3": {{"bucket": {{"name": "b"}}, "object": {{"key": "users/u/f/a.jpg", "versionId": "v1",
                  "sequencer": "0055"}}}}{glacier}}}]}}"#
            )
        };
        let glacier = r#", "glacierEventData": {"restoreEventData": {
            "lifecycleRestorationExpiryTime": "2026-12-12T00:00:00.000Z", "lifecycleRestoreStorageClass": "GLACIER"}}"#;
        let done = &parse_sqs_body(&record("ObjectRestore:Completed", glacier)).unwrap()[0];
        assert_eq!(done.change, ObjectChange::RestoreCompleted);
        assert_eq!(done.restored_until, Some(time::macros::datetime!(2026-12-12 00:00 UTC)));
        assert_eq!(done.version_id.as_deref(), Some("v1"));
        for (name, change) in [
            ("LifecycleTransition", ObjectChange::Transitioned),
            ("ObjectRestore:Post", ObjectChange::RestoreStarted),
            ("ObjectRestore:Delete", ObjectChange::RestoreExpired),
        ] {
            let e = &parse_sqs_body(&record(name, "")).unwrap()[0];
            assert_eq!((e.change, e.restored_until), (change, None), "{name}");
        }
        assert!(parse_sqs_body(&record("ObjectTagging:Put", "")).is_err());
    }

    fn at(sequencer: Option<&str>, time: Option<&str>) -> ObjectEvent {
        ObjectEvent {
            change: ObjectChange::Created,
            name: "ObjectCreated:Put".into(),
            bucket: "b".into(),
            key: "k".into(),
            size: None,
            version_id: None,
            sequencer: sequencer.map(str::to_owned),
            event_time: time.map(str::to_owned),
            restored_until: None,
        }
    }

    #[test]
    fn events_order_by_sequencer_then_by_time() {
        // Greater hex value = later, also when the strings differ in length.
        let (a, b) = (at(Some("0055AED6DCD90281E5"), None), at(Some("0055AED6DCD90281E6"), None));
        assert!(a.order() < b.order());
        let (short, long) = (at(Some("0055AED6DCD9028"), None), at(Some("0055AED6DCD90281E5"), None));
        assert!(short.order() < long.order());
        assert!(at(Some("00a1"), None).order() == at(Some("00A1"), None).order());
        // Without a sequencer (moto) the event time decides.
        let (early, late) = (at(None, Some("2026-11-28T10:00:00.000Z")), at(None, Some("2026-11-28T10:00:00.001Z")));
        assert!(early.order() < late.order());
        assert_eq!(at(None, None).order(), None);
    }

    #[test]
    fn lifecycle_expirations_are_removals() {
        // S3 announces what the lifecycle rules delete as LifecycleExpiration events (the
        // restore window ending for a soft-deleted file's versions).
        for (name, change) in [
            ("LifecycleExpiration:Delete", ObjectChange::Removed),
            ("LifecycleExpiration:DeleteMarkerCreated", ObjectChange::DeleteMarkerCreated),
        ] {
            let raw = format!(
                r#"{{"Records": [{{"eventName": "{name}", "s3": {{"bucket": {{"name": "b"}}, "object": {{"key": "users%2Fa%2Fb"}}}}}}]}}"#
            );
            let events = parse_sqs_body(&raw).unwrap();
            assert_eq!(events[0].change, change, "{name}");
        }
        // a transition is not a removal (the archive tier: see the next test)
        let raw = r#"{"Records": [{"eventName": "LifecycleTransition", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]}"#;
        assert_eq!(parse_sqs_body(raw).unwrap()[0].change, ObjectChange::Transitioned);
    }

    #[test]
    fn test_events_and_deletes() {
        let test = r#"{"Type": "Notification", "Message": "{\"Service\": \"Amazon S3\", \"Event\": \"s3:TestEvent\", \"Bucket\": \"b\"}"}"#;
        assert!(parse_sqs_body(test).unwrap().is_empty());
        let raw = r#"{"Records": [{"eventName": "ObjectRemoved:DeleteMarkerCreated", "s3": {"bucket": {"name": "b"}, "object": {"key": "users%2Fa%2Fb"}}}]}"#;
        assert_eq!(parse_sqs_body(raw).unwrap()[0].change, ObjectChange::DeleteMarkerCreated);
        let raw = raw.replace("DeleteMarkerCreated", "Delete");
        assert_eq!(parse_sqs_body(&raw).unwrap()[0].change, ObjectChange::Removed);
        for bad in [
            "",
            "{",
            r#"{"Records": [{"eventName": "Other", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]}"#,
        ] {
            assert!(parse_sqs_body(bad).is_err(), "{bad}");
        }
        assert!(decode_key("%FF").is_err());
    }
    #[test]
    fn an_events_age_is_read_from_its_time() {
        let mut e = ObjectEvent {
            change: ObjectChange::Created,
            name: "ObjectCreated:Post".into(),
            bucket: "b".into(),
            key: "k".into(),
            size: None,
            version_id: None,
            sequencer: None,
            event_time: Some("2026-12-07T09:00:00.250Z".into()),
            restored_until: None,
        };
        let now = time::macros::datetime!(2026-12-07 09:00:03.500 UTC);
        assert_eq!(e.age_millis(now), Some(3_250));
        assert_eq!(e.age_millis(time::macros::datetime!(2026-12-07 08:59:59 UTC)), None, "a time after now");
        e.event_time = Some("yesterday".into());
        assert_eq!(e.age_millis(now), None);
        e.event_time = None;
        assert_eq!(e.age_millis(now), None);
    }
}

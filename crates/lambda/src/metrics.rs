//! Metrics as CloudWatch Embedded Metric Format: one JSON line on stdout per event, which
//! CloudWatch Logs turns into metrics without any API call from the function.

use serde_json::{Map, Value, json};

/// The namespace every metric of the platform is published under.
pub const NAMESPACE: &str = "matbakh-files";

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Milliseconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// The EMF line for `metrics` (name, value, unit), dimensioned by function and operation.
pub fn emf_line(function: &str, operation: &str, timestamp_ms: i64, metrics: &[(&str, u64, Unit)]) -> String {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function", "Operation"]],
                "Metrics": metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit.name()})).collect::<Vec<_>>(),
            }],
        }),
    );
    root.insert("Function".into(), json!(function));
    root.insert("Operation".into(), json!(operation));
    for (name, value, _) in metrics {
        root.insert((*name).into(), json!(value));
    }
    Value::Object(root).to_string()
}

/// Writes the EMF line for `metrics` to stdout (the function's log stream).
pub fn emit(operation: &str, metrics: &[(&str, u64, Unit)]) {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    let now = time::OffsetDateTime::now_utc();
    let ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    println!("{}", emf_line(&function, operation, ms, metrics));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_embedded_metric_format() {
        let line = emf_line(
            "presign",
            "create_upload",
            1_700_000_000_000,
            &[("Uploads", 1, Unit::Count), ("UploadBytes", 42, Unit::Bytes)],
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Function", "Operation"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Uploads", "Unit": "Count"}, {"Name": "UploadBytes", "Unit": "Bytes"}])
        );
        // every dimension and metric named in the directive is a member of the root
        assert_eq!((v["Function"].as_str(), v["Operation"].as_str()), (Some("presign"), Some("create_upload")));
        assert_eq!((v["Uploads"].as_u64(), v["UploadBytes"].as_u64()), (Some(1), Some(42)));
        assert!(!line.contains('\n'));
    }
}

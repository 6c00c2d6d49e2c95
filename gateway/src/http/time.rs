//! The one timestamp format of the JSON API: RFC 3339 in UTC with a `Z` and millisecond precision
//! (`2026-12-02T12:30:00.000Z`). Store and domain times are unix milliseconds; views turn them into text here,
//! with [`rfc3339`] or the serde helpers below. (The room WebSocket's frames keep unix milliseconds: that is
//! docs/PROTOCOL.md's wire format, not this API's.)

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// Unix milliseconds as RFC 3339 UTC, `Z`, milliseconds.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `#[serde(serialize_with = "serialize_ms_as_rfc3339")]` on an `i64` of unix milliseconds.
pub fn serialize_ms_as_rfc3339<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*ms))
}

/// The same for an `Option<i64>` (`None` is `null`).
pub fn serialize_opt_ms_as_rfc3339<S: Serializer>(ms: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => serializer.serialize_str(&rfc3339(*ms)),
        None => serializer.serialize_none(),
    }
}

/// For a store or domain type serialised as it is (a `ticketing` record): the named fields, where they hold unix
/// milliseconds, become RFC 3339, at any depth.
pub fn ms_fields_as_rfc3339(value: &mut serde_json::Value, fields: &[&str]) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match field.as_i64() {
                    Some(ms) if fields.contains(&key.as_str()) => *field = rfc3339(ms).into(),
                    _ => ms_fields_as_rfc3339(field, fields),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|item| ms_fields_as_rfc3339(item, fields)),
        _ => {}
    }
}

/// A ledger row's times (`ticketing::purchases::LedgerRow`, flattened into payouts and settlements).
pub const LEDGER_TIMES: &[&str] = &["due_at", "settled_at"];

/// `serialize_with` for `ticketing::analytics::AttendanceAnalytics`: `peak_at` and each `per_minute[].minute`.
pub fn serialize_attendance<T: serde::Serialize, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    let mut json = serde_json::to_value(value).map_err(serde::ser::Error::custom)?;
    ms_fields_as_rfc3339(&mut json, &["peak_at", "minute"]);
    serde::Serialize::serialize(&json, serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_with_z_and_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_214_600_123), "2026-12-02T12:30:00.123Z");
        #[derive(serde::Serialize)]
        struct View {
            #[serde(serialize_with = "serialize_ms_as_rfc3339")]
            at: i64,
            #[serde(serialize_with = "serialize_opt_ms_as_rfc3339")]
            until: Option<i64>,
        }
        let json = serde_json::to_value(View { at: 1_796_214_600_000, until: None }).unwrap();
        assert_eq!(json, serde_json::json!({ "at": "2026-12-02T12:30:00.000Z", "until": null }));

        let mut rows = serde_json::json!([{ "id": 7, "due_at": 0, "settled_at": null, "nested": { "due_at": 1000 } }]);
        ms_fields_as_rfc3339(&mut rows, LEDGER_TIMES);
        assert_eq!(
            rows,
            serde_json::json!([{ "id": 7, "due_at": "1970-01-01T00:00:00.000Z", "settled_at": null,
            "nested": { "due_at": "1970-01-01T00:00:01.000Z" } }])
        );
    }
}

//! Timestamps with one fixed textual form.
//!
//! Every timestamp we store or return is UTC with exactly six fractional digits
//! (`2026-11-21T14:03:27.123456Z`). A fixed width makes the text sort in time order, so both
//! storage backends can compare and index timestamps as plain strings.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-11-21T14:03:27.123456Z")]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, truncated to microseconds so that a value survives a round trip.
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        let micros = at.timestamp_micros();
        Self(DateTime::from_timestamp_micros(micros).unwrap_or(at))
    }

    /// Parses any RFC 3339 timestamp (with any offset) into UTC.
    pub fn parse(text: &str) -> Result<Self, chrono::ParseError> {
        Ok(Self::from_datetime(
            DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc),
        ))
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// The canonical, sortable text form.
    pub fn to_canonical(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_canonical())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_canonical())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(|e| {
            serde::de::Error::custom(format!("expected an RFC 3339 timestamp, got {text:?}: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_sorts_in_time_order() {
        let a = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        let b = Timestamp::parse("2026-01-01T00:00:00.5Z").unwrap();
        let c = Timestamp::parse("2026-01-01T01:00:00+00:30").unwrap();
        let mut texts = vec![c.to_canonical(), b.to_canonical(), a.to_canonical()];
        texts.sort();
        assert_eq!(
            texts,
            vec![a.to_canonical(), b.to_canonical(), c.to_canonical()]
        );
        assert_eq!(a.to_canonical(), "2026-01-01T00:00:00.000000Z");
    }

    #[test]
    fn a_timestamp_survives_a_json_round_trip() {
        let now = Timestamp::now();
        let json = serde_json::to_string(&now).unwrap();
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(now, back);
    }
}

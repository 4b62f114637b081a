//! Pure helpers of the REST API: Kafka's murmur2 partitioner, key/value
//! data of the REST shapes (JSON, STRING, BINARY), RFC 3339 timestamps.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Kafka's murmur2 (the Java client's `Utils.murmur2`, librdkafka's
/// `murmur2` partitioner): the same key lands in the same partition from
/// HTTP, the Java client and librdkafka.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record, as Kafka clients choose it.
pub fn partition_for_key(key: &[u8], partitions: usize) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) as usize % partitions.max(1)) as i32
}

/// How the `data` of a key or value is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DataType {
    /// Any JSON value, stored as its compact JSON text.
    Json,
    /// A JSON string, stored as its UTF-8 bytes.
    String,
    /// Base64 (standard alphabet) of the bytes.
    Binary,
}

/// A key or value of a produce request.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct RecordData {
    /// How `data` is encoded (default JSON).
    #[serde(rename = "type", default)]
    pub kind: Option<DataType>,
    /// The data; null for a null key or value.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl RecordData {
    /// The bytes stored in Kafka.
    pub fn to_bytes(&self, what: &str) -> Result<Option<Vec<u8>>, String> {
        if self.data.is_null() {
            return Ok(None);
        }
        match self.kind.unwrap_or(DataType::Json) {
            DataType::Json => serde_json::to_vec(&self.data)
                .map(Some)
                .map_err(|e| format!("{what}: {e}")),
            DataType::String => match &self.data {
                serde_json::Value::String(s) => Ok(Some(s.as_bytes().to_vec())),
                other => Err(format!(
                    "{what}: type STRING needs a JSON string, got {}",
                    json_kind(other)
                )),
            },
            DataType::Binary => match &self.data {
                serde_json::Value::String(s) => b64_decode(s)
                    .map(Some)
                    .map_err(|e| format!("{what}: invalid base64: {e}")),
                other => Err(format!(
                    "{what}: type BINARY needs a base64 string, got {}",
                    json_kind(other)
                )),
            },
        }
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

pub fn b64_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(s)
}

pub fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2024-05-01T12:00:00.123Z`).
pub fn format_rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Parse an RFC 3339 timestamp (`Z` or `±hh:mm` offset, optional fraction)
/// into milliseconds since the epoch.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() {
            return None;
        }
        let mut f = frac.chars().take(3).collect::<String>();
        while f.len() < 3 {
            f.push('0');
        }
        millis = f.parse().ok()?;
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let v = oh * 60 + om;
            if *c == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        let t = 1_714_564_800_123;
        assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(t)), Some(t));
        assert_eq!(
            parse_rfc3339_ms("2024-05-01T14:00:00+02:00"),
            Some(1_714_564_800_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-05-01T12:00:00Z"),
            Some(1_714_564_800_000)
        );
        assert_eq!(parse_rfc3339_ms("2024-13-01T12:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("nonsense"), None);
        assert_eq!(
            parse_rfc3339_ms("2024-05-01T12:00:00.5Z"),
            Some(1_714_564_800_500)
        );
    }

    #[test]
    fn data_types() {
        let d: RecordData = serde_json::from_str(r#"{"type":"BINARY","data":"AAE="}"#).unwrap();
        assert_eq!(d.to_bytes("v").unwrap(), Some(vec![0, 1]));
        let d: RecordData = serde_json::from_str(r#"{"type":"STRING","data":"hé"}"#).unwrap();
        assert_eq!(d.to_bytes("v").unwrap(), Some("hé".as_bytes().to_vec()));
        let d: RecordData = serde_json::from_str(r#"{"data":{"a":1}}"#).unwrap();
        assert_eq!(d.to_bytes("v").unwrap(), Some(br#"{"a":1}"#.to_vec()));
        let d: RecordData = serde_json::from_str(r#"{"type":"STRING","data":null}"#).unwrap();
        assert_eq!(d.to_bytes("v").unwrap(), None);
        let d: RecordData = serde_json::from_str(r#"{"type":"STRING","data":3}"#).unwrap();
        assert!(d.to_bytes("v").is_err());
    }
}

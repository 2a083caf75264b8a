//! Timestamps in the exact shape the reference emits (protocol §1.5): ISO-8601 without an offset,
//! microseconds as six digits, the fraction omitted when it is zero. We always use UTC wall time
//! (see `specs/datetimes.md`); parsing accepts every shape pydantic accepts.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDateTime, SubsecRound, Timelike, Utc};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A point in time with microsecond precision, serialized offset-less (protocol §1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(NaiveDateTime);

impl Timestamp {
    /// The current UTC time, truncated to microseconds (what Postgres `timestamp` keeps).
    pub fn now() -> Self {
        Timestamp(Utc::now().naive_utc().trunc_subsecs(6))
    }

    /// Now, but strictly later than `previous`: keeps items of one thread in creation order
    /// even if the wall clock steps back or two items land in the same microsecond.
    pub fn now_after(previous: Option<Timestamp>) -> Self {
        let now = Self::now();
        match previous {
            Some(prev) if now <= prev => Timestamp(prev.0 + chrono::Duration::microseconds(1)),
            _ => now,
        }
    }

    pub fn from_naive(value: NaiveDateTime) -> Self {
        Timestamp(value.trunc_subsecs(6))
    }

    pub fn naive(&self) -> NaiveDateTime {
        self.0
    }

    /// Parses every shape the Python SDK accepts: `T` or space separator, any fraction,
    /// optional `Z`/offset (converted to UTC), or Unix seconds.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(aware) = DateTime::parse_from_rfc3339(text) {
            return Some(Self::from_naive(aware.with_timezone(&Utc).naive_utc()));
        }
        for format in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
        ] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
                return Some(Self::from_naive(naive));
            }
        }
        for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
            if let Ok(aware) = DateTime::parse_from_str(text, format) {
                return Some(Self::from_naive(aware.with_timezone(&Utc).naive_utc()));
            }
        }
        text.parse::<f64>().ok().and_then(Self::from_unix_seconds)
    }

    fn from_unix_seconds(seconds: f64) -> Option<Self> {
        if !seconds.is_finite() {
            return None;
        }
        let micros = (seconds * 1_000_000.0).round() as i64;
        DateTime::<Utc>::from_timestamp_micros(micros).map(|t| Self::from_naive(t.naive_utc()))
    }
}

/// The longest text [`Timestamp::write_iso`] writes: `YYYY-MM-DDTHH:MM:SS.ffffff`.
const ISO_LEN: usize = 26;

impl Timestamp {
    /// The timestamp's text written digit by digit into `buf` (a turn writes a dozen of them;
    /// the formatting machinery cost ≈ 1,500 instructions each); `None` for a year beyond four
    /// digits, which `Display` writes in chrono's signed form.
    fn write_iso(&self, buf: &mut [u8; ISO_LEN]) -> Option<usize> {
        let (date, time) = (self.0.date(), self.0.time());
        let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
        let mut put = |at: usize, value: u32, digits: usize| {
            let mut value = value;
            for i in (0..digits).rev() {
                buf[at + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, year, 4);
        put(5, date.month(), 2);
        put(8, date.day(), 2);
        put(11, time.hour(), 2);
        put(14, time.minute(), 2);
        put(17, time.second(), 2);
        let micros = self.0.nanosecond() / 1_000;
        if micros != 0 {
            put(20, micros, 6);
        }
        buf[4] = b'-';
        buf[7] = b'-';
        buf[10] = b'T';
        buf[13] = b':';
        buf[16] = b':';
        if micros == 0 {
            return Some(19);
        }
        buf[19] = b'.';
        Some(ISO_LEN)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; ISO_LEN];
        if let Some(len) = self.write_iso(&mut buf) {
            return f.write_str(std::str::from_utf8(&buf[..len]).expect("ASCII digits"));
        }
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S"))?;
        let micros = self.0.nanosecond() / 1_000;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        Ok(())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; ISO_LEN];
        match self.write_iso(&mut buf) {
            Some(len) => serializer.serialize_str(std::str::from_utf8(&buf[..len]).expect("ASCII")),
            None => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an ISO-8601 datetime or Unix seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).ok_or_else(|| E::custom("invalid datetime"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                Timestamp::from_unix_seconds(v).ok_or_else(|| E::custom("invalid datetime"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_each_field_as_chrono_formats_it() {
        let seconds = [
            -62_135_596_800.0, // 0001-01-01
            -62_167_219_200.0, // 0000-01-01
            -1.5,
            0.0,
            951_782_400.000_001, // 2000-02-29
            1_767_225_599.999_999,
            253_402_300_799.0, // 9999-12-31T23:59:59
            253_402_300_800.0, // 10000-01-01
        ];
        for s in seconds {
            let t = Timestamp::from_unix_seconds(s).unwrap();
            let chrono = t.0.format("%Y-%m-%dT%H:%M:%S").to_string();
            assert!(t.to_string().starts_with(&chrono), "{t} vs {chrono}");
        }
    }

    proptest::proptest! {
        /// Digit by digit, as chrono writes it: serialized and displayed alike, microseconds
        /// only when not zero, years beyond four digits in chrono's signed form.
        #[test]
        fn written_digit_by_digit_as_chrono_formats(micros in -70_000_000_000_000_000i64..300_000_000_000_000_000) {
            let t = Timestamp(DateTime::<Utc>::from_timestamp_micros(micros).unwrap().naive_utc());
            let mut expected = t.0.format("%Y-%m-%dT%H:%M:%S").to_string();
            if micros.rem_euclid(1_000_000) != 0 {
                expected.push_str(&t.0.format("%.6f").to_string());
            }
            proptest::prop_assert_eq!(t.to_string(), expected.clone());
            proptest::prop_assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{expected}\""));
        }
    }

    #[test]
    fn formats_like_pydantic() {
        let t = Timestamp::parse("2025-01-02T03:04:05").unwrap();
        assert_eq!(t.to_string(), "2025-01-02T03:04:05");
        let t = Timestamp::parse("2025-06-01T10:15:42.118204").unwrap();
        assert_eq!(t.to_string(), "2025-06-01T10:15:42.118204");
        let t = Timestamp::parse("2025-06-01T10:15:42.5").unwrap();
        assert_eq!(t.to_string(), "2025-06-01T10:15:42.500000");
    }

    #[test]
    fn accepts_offsets_and_unix_seconds() {
        let t = Timestamp::parse("2025-06-01T12:15:42+02:00").unwrap();
        assert_eq!(t.to_string(), "2025-06-01T10:15:42");
        let t = Timestamp::parse("2025-06-01 10:15:42Z").unwrap();
        assert_eq!(t.to_string(), "2025-06-01T10:15:42");
        let t: Timestamp = serde_json::from_str("0").unwrap();
        assert_eq!(t.to_string(), "1970-01-01T00:00:00");
        assert!(Timestamp::parse("yesterday").is_none());
    }

    #[test]
    fn now_after_is_strictly_increasing() {
        let far = Timestamp::parse("2999-01-01T00:00:00").unwrap();
        assert_eq!(
            Timestamp::now_after(Some(far)).to_string(),
            "2999-01-01T00:00:00.000001"
        );
    }
}

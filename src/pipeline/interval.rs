//! [`Interval`]: the durations of pipeline params and options ("5 seconds", "500 ms", "2h"),
//! rendered as Flink SQL interval literals or Flink duration option values.

/// A positive duration written as "5 seconds", "1 minute", "500 ms", "2h".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub millis: u64,
}

impl Interval {
    pub fn parse(s: &str) -> Result<Interval, String> {
        match Interval::parse_bound(s)? {
            Interval { millis: 0 } => Err(format!("\"{s}\" must be between 1 and 1000000 units")),
            i => Ok(i),
        }
    }

    /// Like [`Interval::parse`], but zero is allowed ("0 seconds"): a bound, not a duration.
    pub fn parse_bound(s: &str) -> Result<Interval, String> {
        let t = s.trim().to_ascii_lowercase();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("\"{s}\" is not an interval like '5 seconds'"))?;
        let mult = match unit.trim() {
            "ms" | "millisecond" | "milliseconds" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
            "h" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            other => {
                return Err(format!(
                    "unknown unit \"{other}\" in \"{s}\" (ms, seconds, minutes, hours, days)"
                ))
            }
        };
        if n > 1_000_000 {
            return Err(format!("\"{s}\" must be between 0 and 1000000 units"));
        }
        Ok(Interval { millis: n * mult })
    }

    /// `INTERVAL '5' SECOND` in the largest unit that divides the duration.
    pub fn sql(&self) -> String {
        let m = self.millis;
        if m == 0 {
            return "INTERVAL '0' SECOND".into();
        }
        for (unit, size) in [
            ("DAY", 86_400_000),
            ("HOUR", 3_600_000),
            ("MINUTE", 60_000),
            ("SECOND", 1_000),
        ] {
            if m.is_multiple_of(size) {
                return format!("INTERVAL '{}' {unit}", m / size);
            }
        }
        format!("INTERVAL '{}.{:03}' SECOND", m / 1000, m % 1000)
    }

    /// Flink duration option value: "5000 ms".
    pub fn option(&self) -> String {
        format!("{} ms", self.millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(
            Interval::parse("5 seconds").unwrap().sql(),
            "INTERVAL '5' SECOND"
        );
        assert_eq!(
            Interval::parse("90s").unwrap().sql(),
            "INTERVAL '90' SECOND"
        );
        assert_eq!(
            Interval::parse("120 minutes").unwrap().sql(),
            "INTERVAL '2' HOUR"
        );
        assert_eq!(
            Interval::parse("1500 ms").unwrap().sql(),
            "INTERVAL '1.500' SECOND"
        );
        assert_eq!(Interval::parse("1 day").unwrap().option(), "86400000 ms");
        assert!(Interval::parse("0 seconds").is_err());
        assert_eq!(
            Interval::parse_bound("0 seconds").unwrap().sql(),
            "INTERVAL '0' SECOND"
        );
        for bad in [
            "",
            "0 s",
            "-1 s",
            "5",
            "five seconds",
            "1 week",
            "1 s; DROP",
        ] {
            assert!(Interval::parse(bad).is_err(), "{bad}");
        }
    }
}

//! Calendar arithmetic and the date/time texts the wrappers parse and write.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Two-digit seconds at `at` (at most 60, a leap second) and an optional `.`/`,` fraction, as
/// microseconds rounded half away from zero as Postgres rounds input; and where they end.
fn seconds(s: &str, at: usize) -> Option<(i64, usize)> {
    let b = s.as_bytes();
    let two = b.get(at..at + 2)?;
    if !two.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sec = i64::from(two[0] - b'0') * 10 + i64::from(two[1] - b'0');
    if sec > 60 {
        return None;
    }
    let mut us = sec * 1_000_000;
    let mut i = at + 2;
    if matches!(b.get(i), Some(b'.') | Some(b',')) {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() {
            return None;
        }
        let mut digits: String = frac.chars().take(6).collect();
        while digits.len() < 6 {
            digits.push('0');
        }
        let round_up = frac.as_bytes().get(6).is_some_and(|c| *c >= b'5');
        us += digits.parse::<i64>().ok()? + i64::from(round_up);
    }
    Some((us, i))
}

/// Parses ISO 8601 dates and date-times as Elasticsearch's `strict_date_optional_time` writes
/// them: `2024-05-01`, `2024-05-01T10:00`, `2024-05-01T10:00:00.123Z`, `…+02:00`, `…+0200`,
/// with a space allowed instead of `T`. No zone means UTC. Returns microseconds since 1970.
fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let mut us = days_from_civil(y, mo as u32, d as u32) * 86_400_000_000;
    let mut i = 10;
    if i < b.len() && (b[i] == b'T' || b[i] == b' ') {
        i += 1;
        let (h, mi) = (num(i, 2)?, num(i + 3, 2)?);
        if b.get(i + 2) != Some(&b':') || h > 24 || mi > 59 {
            return None;
        }
        us += (h * 3600 + mi * 60) * 1_000_000;
        i += 5;
        if b.get(i) == Some(&b':') {
            let (sec_us, next) = seconds(s, i + 1)?;
            us += sec_us;
            i = next;
        }
        match b.get(i) {
            None => {}
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => {}
            Some(&sign) if sign == b'+' || sign == b'-' => {
                let rest = &s[i + 1..];
                let (oh, om) = match rest.len() {
                    5 if rest.as_bytes()[2] == b':' => (num(i + 1, 2)?, num(i + 4, 2)?),
                    4 => (num(i + 1, 2)?, num(i + 3, 2)?),
                    2 => (num(i + 1, 2)?, 0),
                    _ => return None,
                };
                let off = (oh * 3600 + om * 60) * 1_000_000;
                us += if sign == b'+' { -off } else { off };
            }
            _ => return None,
        }
    } else if i != b.len() {
        return None;
    }
    Some(us)
}

/// `2024-05-01T10:00:00.123456Z` (fraction only when non-zero, millisecond precision when it
/// suffices).
pub fn format_ts(us: i64) -> String {
    let days = us.div_euclid(86_400_000_000);
    let rem = us.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    let frac = rem % 1_000_000;
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac == 0 {
        format!("{base}Z")
    } else if frac % 1000 == 0 {
        format!("{base}.{:03}Z", frac / 1000)
    } else {
        format!("{base}.{frac:06}Z")
    }
}

pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses a time of day as Flink writes `TIME` in JSON (`10:00:00`, `10:00:00.123`) or as
/// Postgres takes it (`10:00`, up to `24:00:00`). Fractions beyond microseconds round half away
/// from zero. Returns microseconds since midnight.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize| -> Option<i64> {
        let part = s.get(from..from + 2)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.get(2) != Some(&b':') {
        return None;
    }
    let (h, mi) = (num(0)?, num(3)?);
    let mut us = 0i64;
    let mut i = 5;
    if b.get(i) == Some(&b':') {
        let (sec_us, next) = seconds(s, i + 1)?;
        us += sec_us;
        i = next;
    }
    if i != b.len() || h > 24 || mi > 59 {
        return None;
    }
    us += (h * 3600 + mi * 60) * 1_000_000;
    (us <= 86_400_000_000).then_some(us)
}

/// `10:00:00`, `10:00:00.123` or `10:00:00.123456` (as Flink's JSON format writes `TIME`).
pub fn format_time(us: i64) -> String {
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        base
    } else if frac % 1000 == 0 {
        format!("{base}.{:03}", frac / 1000)
    } else {
        format!("{base}.{frac:06}")
    }
}

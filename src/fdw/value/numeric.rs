//! `numeric(p,s)` and `timestamp(p)`/`time(p)` typmods as Postgres' input applies them.
use super::Mismatch;

/// Precision and scale of a `numeric` typmod (`atttypmod`), None for an unconstrained one
/// (Postgres' `numeric_typmod_precision`/`_scale`: the scale is an 11-bit signed field).
pub fn numeric_typmod(typmod: i32) -> Option<(i32, i32)> {
    const VARHDRSZ: i32 = 4;
    if typmod < VARHDRSZ {
        return None;
    }
    let t = typmod - VARHDRSZ;
    Some(((t >> 16) & 0xffff, ((t & 0x7ff) ^ 1024) - 1024))
}

/// Whether number text `s` fits `numeric(precision, scale)` as Postgres' typmod coercion
/// decides: the value is rounded (half away from zero) to `scale` fraction digits, and must
/// then be less than 10^(precision - scale) in absolute value; NaN fits, infinities do not.
/// Text that is not a number is left for the conversion to refuse (Ok).
pub fn check_numeric_fits(s: &str, precision: i32, scale: i32) -> Result<(), Mismatch> {
    let ty = format!("numeric({precision},{scale})");
    let t = s.trim();
    let unsigned = t.trim_start_matches(['+', '-']);
    let lower = unsigned.to_ascii_lowercase();
    if lower == "nan" {
        return Ok(());
    }
    if lower == "inf" || lower == "infinity" {
        return Err(Mismatch(format!(
            "value {t} does not fit type {ty}: it cannot hold an infinite value"
        )));
    }
    // digits × 10^exp
    let (mantissa, exp) = match unsigned.find(['e', 'E']) {
        Some(i) => match unsigned[i + 1..].parse::<i64>() {
            Ok(e) => (&unsigned[..i], e),
            Err(_) => return Ok(()),
        },
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Ok(());
    }
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let mut exp = exp - frac.len() as i64;
    // Round to `scale` fraction digits: drop the digits below 10^-scale.
    let drop = -(scale as i64) - exp;
    if drop > 0 {
        let n = digits.len() as i64;
        if drop > n {
            digits.clear();
        } else {
            let keep = (n - drop) as usize;
            let up = digits[keep] >= 5;
            digits.truncate(keep);
            if up {
                let mut i = digits.len();
                loop {
                    if i == 0 {
                        digits.insert(0, 1);
                        break;
                    }
                    i -= 1;
                    if digits[i] == 9 {
                        digits[i] = 0;
                    } else {
                        digits[i] += 1;
                        break;
                    }
                }
            }
        }
        exp = -(scale as i64);
    }
    let first = digits.iter().position(|d| *d != 0);
    let Some(first) = first else {
        return Ok(()); // zero fits any numeric
    };
    // value < 10^(significant digits + exp), and ≥ 10^(that - 1).
    let magnitude = (digits.len() - first) as i64 + exp;
    let max = precision as i64 - scale as i64;
    if magnitude > max {
        return Err(Mismatch(format!(
            "value {t} does not fit type {ty}: it must round to an absolute value less than 10^{max}"
        )));
    }
    Ok(())
}

/// Rounds microseconds (Postgres' epoch for timestamps, midnight for times) to the precision
/// of a `timestamp(p)`/`time(p)` typmod as Postgres' input does (half away from zero); any
/// typmod outside 0..6 leaves the value as is.
pub fn round_to_typmod(us: i64, typmod: i32) -> i64 {
    if !(0..6).contains(&typmod) {
        return us;
    }
    let scale = 10i64.pow((6 - typmod) as u32);
    let offset = scale / 2;
    if us >= 0 {
        us.saturating_add(offset) / scale * scale
    } else {
        -((us.saturating_neg().saturating_add(offset)) / scale * scale)
    }
}

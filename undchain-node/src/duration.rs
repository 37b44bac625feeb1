//! Durations as operators write them: `500ms`, `10s`, `2m`, `4h`, `1d`
//! (also `us`), a whole number and a unit, read into microseconds.

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a number followed by a unit.
    #[error(
        "{text:?} is not a duration: write a whole number and a unit (us, ms, s, m, h, d), e.g. 500ms, 10s, 4h"
    )]
    Syntax {
        /// What was written.
        text: String,
    },
    /// Too large for microseconds in 64 bits.
    #[error("{text:?} is too long a duration")]
    Overflow {
        /// What was written.
        text: String,
    },
}

/// Reads `text` (`500ms`, `10s`, `4h`, ...) as microseconds.
pub fn parse_us(text: &str) -> Result<u64, DurationError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let syntax = || DurationError::Syntax {
        text: text.to_owned(),
    };
    let n: u64 = digits.parse().map_err(|_| syntax())?;
    let scale: u64 = match unit.trim() {
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" | "min" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => return Err(syntax()),
    };
    n.checked_mul(scale).ok_or_else(|| DurationError::Overflow {
        text: text.to_owned(),
    })
}

/// Writes microseconds in the largest unit that divides them exactly.
pub fn format_us(us: u64) -> String {
    for (unit, scale) in [
        ("d", 86_400_000_000),
        ("h", 3_600_000_000),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
    ] {
        if us != 0 && us % scale == 0 {
            return format!("{}{unit}", us / scale);
        }
    }
    format!("{us}us")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_and_write_back() {
        for (text, us) in [
            ("500ms", 500_000),
            ("10s", 10_000_000),
            ("4h", 14_400_000_000),
            ("2m", 120_000_000),
            ("1d", 86_400_000_000),
            ("7us", 7),
        ] {
            assert_eq!(parse_us(text), Ok(us), "{text}");
            assert_eq!(parse_us(&format_us(us)), Ok(us), "{text}");
        }
        assert_eq!(format_us(1_500_000), "1500ms");
    }

    #[test]
    fn bad_durations_say_what_was_written() {
        for text in ["", "10", "s", "1.5s", "10 parsecs", "-1s"] {
            let e = parse_us(text).unwrap_err();
            assert!(e.to_string().contains(&format!("{text:?}")), "{e}");
        }
        assert!(matches!(
            parse_us("99999999999999d"),
            Err(DurationError::Overflow { .. })
        ));
    }
}

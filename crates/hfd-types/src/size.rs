//! Byte sizes as users type them (`10M`, `1.5GiB`, `512k`).

use std::fmt;
use std::str::FromStr;

/// A number of bytes, parsed from strings such as `1048576`, `1M`, `10MiB`,
/// `1.5G` or `512k`.
///
/// Suffixes follow aria2c and hfd.sh: `K`, `M`, `G`, `T` (with or without a
/// trailing `B` or `iB`) are powers of 1024. Lower case is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(u64);

impl ByteSize {
    /// `n` bytes.
    pub const fn new(bytes: u64) -> Self {
        Self(bytes)
    }

    /// `n` KiB.
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }

    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

/// Why a size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: expected a number with an optional K, M, G or T suffix, like 10M")]
pub struct ByteSizeParseError {
    input: String,
}

impl FromStr for ByteSize {
    type Err = ByteSizeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ByteSizeParseError {
            input: s.to_owned(),
        };
        let trimmed = s.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, suffix) = trimmed.split_at(split);
        if number.is_empty() {
            return Err(err());
        }
        let shift = match suffix.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            "t" | "tb" | "tib" => 40,
            _ => return Err(err()),
        };
        if let Ok(whole) = number.parse::<u64>() {
            return whole.checked_mul(1u64 << shift).map(Self).ok_or_else(err);
        }
        let value: f64 = number.parse().map_err(|_| err())?;
        let scale = f64::from(1u32 << (shift / 2)) * f64::from(1u32 << (shift - shift / 2));
        let bytes = (value * scale).round();
        if !bytes.is_finite() || !(0.0..18_446_744_073_709_551_615.0).contains(&bytes) {
            return Err(err());
        }
        Ok(Self(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    /// Human form with binary units, e.g. `1.50 GiB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.2} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ByteSize;

    #[test]
    fn parses_aria2_style_sizes() {
        let cases = [
            ("0", 0),
            ("1048576", 1 << 20),
            ("1k", 1024),
            ("1K", 1024),
            ("1M", 1 << 20),
            ("10MiB", 10 << 20),
            ("2mb", 2 << 20),
            ("1.5G", 3 << 29),
            ("1T", 1 << 40),
            (" 7 B ", 7),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<ByteSize>().unwrap().bytes(), want, "{input}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for input in [
            "",
            "M",
            "-1",
            "1X",
            "1.2.3M",
            "99999999999999999999",
            "20000000T",
        ] {
            assert!(input.parse::<ByteSize>().is_err(), "{input}");
        }
    }

    #[test]
    fn displays_binary_units() {
        assert_eq!(ByteSize::new(12).to_string(), "12 B");
        assert_eq!(ByteSize::mib(3).to_string(), "3.00 MiB");
    }
}

//! Quota arithmetic on `resource.Quantity` (apimachinery `pkg/api/resource`): values
//! are parsed with ferrokube-api's parser (nano-units), and each sum remembers the
//! format of its first non-zero term — as `Quantity.Add` does — so that the result is
//! written in upstream's canonical form (`CanonicalizeBytes`): `500m`, `128Mi`, `2`,
//! `1500` for 1500 bytes given in binary units, `1G` for decimal ones.

use ferrokube_api::kinds::Quantity;
use serde_json::Value;

const NANO: i128 = 1_000_000_000;

/// How a quantity is written (upstream `resource.Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `2`, `500m`, `1k`, `1G`.
    DecimalSi,
    /// `1Ki`, `128Mi`.
    BinarySi,
    /// `1e3`.
    DecimalExponent,
}

/// A quantity: its value in nano-units and the format it is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    pub nanos: i128,
    pub format: Format,
}

impl Default for Amount {
    /// Zero, DecimalSI (what upstream's usage stats start each resource at).
    fn default() -> Self {
        Amount {
            nanos: 0,
            format: Format::DecimalSi,
        }
    }
}

impl Amount {
    /// `n` whole units (`resource.NewQuantity(n, DecimalSI)`).
    pub fn units(n: i64) -> Amount {
        Amount {
            nanos: i128::from(n) * NANO,
            format: Format::DecimalSi,
        }
    }

    /// Parses a quantity string; `None` when it is not one.
    pub fn parse_str(s: &str) -> Option<Amount> {
        let s = s.trim();
        let q = Quantity::parse_str(s)?;
        let suffix = s.trim_start_matches(|c: char| c.is_ascii_digit() || "+-.".contains(c));
        let format = if suffix.ends_with('i') {
            Format::BinarySi
        } else if suffix.starts_with(['e', 'E']) {
            Format::DecimalExponent
        } else {
            Format::DecimalSi
        };
        Some(Amount { nanos: q.0, format })
    }

    /// Parses a quantity as it appears in JSON (a string, or a bare number).
    pub fn parse(v: &Value) -> Option<Amount> {
        match v {
            Value::String(s) => Amount::parse_str(s),
            Value::Number(_) => Quantity::parse(v).map(|q| Amount {
                nanos: q.0,
                format: Format::DecimalSi,
            }),
            _ => None,
        }
    }

    /// `self + other`; a zero receiver takes the other's format (`Quantity.Add`).
    pub fn plus(self, other: Amount) -> Amount {
        Amount {
            nanos: self.nanos.saturating_add(other.nanos),
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }

    /// The larger of two (upstream `quota.Max` keeps the larger quantity as is).
    pub fn max(self, other: Amount) -> Amount {
        if other.nanos > self.nanos {
            other
        } else {
            self
        }
    }

    /// Upstream's canonical string.
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let mut format = self.format;
        if format == Format::BinarySi && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0)
        {
            // Small or fractional binary amounts are shown as decimal, to avoid rounding.
            format = Format::DecimalSi;
        }
        match format {
            Format::BinarySi => {
                let mut amount = self.nanos / NANO;
                let mut exp = 0;
                while amount % 1024 == 0 && exp < 60 {
                    amount /= 1024;
                    exp += 10;
                }
                let suffix = match exp {
                    0 => "",
                    10 => "Ki",
                    20 => "Mi",
                    30 => "Gi",
                    40 => "Ti",
                    50 => "Pi",
                    _ => "Ei",
                };
                format!("{amount}{suffix}")
            }
            Format::DecimalSi | Format::DecimalExponent => {
                let mut amount = self.nanos;
                let mut exp: i32 = -9;
                while amount % 10 == 0 {
                    amount /= 10;
                    exp += 1;
                }
                // The exponent goes down to a multiple of 3.
                match exp.rem_euclid(3) {
                    1 => {
                        amount *= 10;
                        exp -= 1;
                    }
                    2 => {
                        amount *= 100;
                        exp -= 2;
                    }
                    _ => {}
                }
                let si = match exp {
                    -9 => Some("n"),
                    -6 => Some("u"),
                    -3 => Some("m"),
                    0 => Some(""),
                    3 => Some("k"),
                    6 => Some("M"),
                    9 => Some("G"),
                    12 => Some("T"),
                    15 => Some("P"),
                    18 => Some("E"),
                    _ => None,
                };
                match (format, si) {
                    (_, Some("")) => amount.to_string(),
                    (Format::DecimalSi, Some(s)) => format!("{amount}{s}"),
                    _ => format!("{amount}e{exp}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Amount::parse_str(s).unwrap().canonical()
    }

    #[test]
    fn canonical_forms_as_upstream() {
        assert_eq!(canon("500m"), "500m");
        assert_eq!(canon("0.5"), "500m");
        assert_eq!(canon("1000m"), "1");
        assert_eq!(canon("1500m"), "1500m");
        assert_eq!(canon("2"), "2");
        assert_eq!(canon("1Gi"), "1Gi");
        assert_eq!(canon("1024Mi"), "1Gi");
        assert_eq!(canon("1536Mi"), "1536Mi");
        assert_eq!(canon("1000M"), "1G");
        assert_eq!(canon("1e3"), "1e3");
        assert_eq!(canon("100"), "100");
        assert_eq!(canon("1200"), "1200");
        assert_eq!(canon("12000"), "12k");
        assert_eq!(canon("0.1Ki"), "102400m");
        assert_eq!(canon("0"), "0");
        assert_eq!(canon("-250m"), "-250m");
        assert_eq!(
            Amount::parse(&serde_json::json!(3)).unwrap().canonical(),
            "3"
        );
    }

    #[test]
    fn sums_keep_the_first_format() {
        let zero = Amount::default();
        let sum = zero
            .plus(Amount::parse_str("64Mi").unwrap())
            .plus(Amount::parse_str("64Mi").unwrap());
        assert_eq!(sum.canonical(), "128Mi");
        let sum = zero
            .plus(Amount::parse_str("250m").unwrap())
            .plus(Amount::parse_str("1").unwrap());
        assert_eq!(sum.canonical(), "1250m");
        let sum = Amount::parse_str("1G")
            .unwrap()
            .plus(Amount::parse_str("1Gi").unwrap());
        assert_eq!(sum.canonical(), "2073741824");
        assert_eq!(Amount::units(3).canonical(), "3");
    }
}

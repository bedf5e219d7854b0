//! 円 (yen): money as an integer. No floats anywhere near money; arithmetic is checked.

use std::fmt;

/// An amount of yen. May be negative (adjustment lines).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Yen(i64);

impl Yen {
    /// Zero yen.
    pub const ZERO: Yen = Yen(0);

    /// An amount.
    pub const fn new(yen: i64) -> Self {
        Self(yen)
    }

    /// The amount as an integer.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Yen) -> Option<Yen> {
        self.0.checked_add(other.0).map(Yen)
    }

    /// `self - other`, or `None` on overflow.
    pub fn checked_sub(self, other: Yen) -> Option<Yen> {
        self.0.checked_sub(other.0).map(Yen)
    }

    /// `self * count` (a unit price times a number of recipients), or `None` on overflow.
    pub fn checked_mul(self, count: i64) -> Option<Yen> {
        self.0.checked_mul(count).map(Yen)
    }

    /// The sum of `amounts`, or `None` on overflow.
    pub fn checked_sum(amounts: impl IntoIterator<Item = Yen>) -> Option<Yen> {
        amounts.into_iter().try_fold(Yen::ZERO, Yen::checked_add)
    }
}

impl fmt::Display for Yen {
    /// `64,000円`, `-1,200円`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.unsigned_abs().to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}{grouped}円")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_arithmetic() {
        let unit = Yen::new(2);
        assert_eq!(unit.checked_mul(32_000), Some(Yen::new(64_000)));
        assert_eq!(Yen::new(64_000).checked_mul(12), Some(Yen::new(768_000)));
        assert_eq!(Yen::new(i64::MAX).checked_add(Yen::new(1)), None);
        assert_eq!(Yen::new(i64::MIN).checked_sub(Yen::new(1)), None);
        assert_eq!(Yen::new(i64::MAX).checked_mul(2), None);
        assert_eq!(Yen::checked_sum([Yen::new(1), Yen::new(2), Yen::new(-5)]), Some(Yen::new(-2)));
        assert_eq!(Yen::checked_sum([Yen::new(i64::MAX), Yen::new(1)]), None);
    }

    #[test]
    fn display_groups_thousands() {
        assert_eq!(Yen::new(0).to_string(), "0円");
        assert_eq!(Yen::new(999).to_string(), "999円");
        assert_eq!(Yen::new(64_000).to_string(), "64,000円");
        assert_eq!(Yen::new(768_000).to_string(), "768,000円");
        assert_eq!(Yen::new(-1_234_567).to_string(), "-1,234,567円");
        assert_eq!(Yen::new(i64::MIN).to_string(), "-9,223,372,036,854,775,808円");
    }
}

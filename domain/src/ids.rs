//! Identifiers: the caller's ids in commands, user ids, and the ledger's own internal ids.
//!
//! Caller ids (command id, recipient, certificate) follow the command contract: 1-64 of
//! `A-Za-z0-9._-`. Internal ids ([`RecipientId`], [`SpanNo`]) are assigned by the ledger and are
//! what URLs and PMH history keys are built from, so no caller-chosen text leaks into them.

use std::fmt;

use crate::error::ValueError;

/// Longest caller identifier, in bytes (all ASCII).
pub const IDENT_BYTES_MAX: usize = 64;

fn parse_ident(raw: &str) -> Result<String, ValueError> {
    if raw.is_empty() {
        return Err(ValueError::Required);
    }
    if raw.len() > IDENT_BYTES_MAX {
        return Err(ValueError::TooLong { chars_max: IDENT_BYTES_MAX });
    }
    let ok = raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(ValueError::Format { expected: "半角英数字と . _ - の1〜64文字" });
    }
    Ok(raw.to_owned())
}

macro_rules! ident_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses the contract's identifier syntax: 1-64 of `A-Za-z0-9._-`.
            pub fn parse(raw: &str) -> Result<Self, ValueError> {
                parse_ident(raw).map(Self)
            }

            /// The identifier as given.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

ident_type!(
    /// The idempotency key of a command (処理番号), chosen by the caller.
    CommandId
);
ident_type!(
    /// A user of the ledger (職員ID): the actor or approver of a command.
    UserId
);
ident_type!(
    /// The caller's id for a recipient (宛名番号 or similar), used in commands.
    RecipientRef
);
ident_type!(
    /// The caller's id for one certificate (受給者証) of a recipient, used in commands.
    CertificateRef
);

/// The ledger's internal id of a recipient (受給者内部番号): names the recipient's event stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecipientId(pub u64);

impl fmt::Display for RecipientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Number of a validity span (有効期間) within one recipient's stream.
///
/// Allocated by `decide` from a per-stream counter that never goes back, not even when the
/// event that opened the span is rescinded, so a span number (and the PMH history key made
/// from it) is never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpanNo(pub u32);

impl fmt::Display for SpanNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// PMH history key (履歴キー): names one history record; stable, never reused, at most 50
/// half-width alphanumerics.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HistoryKey(String);

impl HistoryKey {
    /// Longest key PMH accepts.
    pub const CHARS_MAX: usize = 50;

    /// Parses a key received from elsewhere (a past batch, a PMH response).
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        if raw.is_empty() {
            return Err(ValueError::Required);
        }
        if raw.len() > Self::CHARS_MAX {
            return Err(ValueError::TooLong { chars_max: Self::CHARS_MAX });
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ValueError::Format { expected: "半角英数字50文字以内" });
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key of span `span` of recipient `recipient`: `R<recipient>S<span>`.
    ///
    /// Deterministic from the ledger alone; at most 1 + 20 + 1 + 10 = 32 characters.
    pub fn derive(recipient: RecipientId, span: SpanNo) -> Self {
        Self(format!("R{}S{}", recipient.0, span.0))
    }

    /// The key as sent to PMH.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The recipient and span of a key of [`HistoryKey::derive`]'s form (no leading zeros),
    /// `None` for any other key.
    pub fn parts(&self) -> Option<(RecipientId, SpanNo)> {
        let rest = self.0.strip_prefix('R')?;
        let (recipient, span) = rest.split_once('S')?;
        let canonical = |s: &str| !s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
        if !canonical(recipient) || !canonical(span) {
            return None;
        }
        let recipient: u64 = recipient.parse().ok()?;
        let span: u32 = span.parse().ok()?;
        Some((RecipientId(recipient), SpanNo(span)))
    }
}

impl fmt::Display for HistoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_the_contract_syntax() {
        assert!(CommandId::parse("cmd-2026.11_22").is_ok());
        assert_eq!(CommandId::parse("").unwrap_err().code(), "required");
        assert_eq!(CommandId::parse("a b").unwrap_err().code(), "format");
        assert_eq!(CommandId::parse("ａ").unwrap_err().code(), "format");
        assert!(RecipientRef::parse(&"x".repeat(64)).is_ok());
        assert_eq!(RecipientRef::parse(&"x".repeat(65)).unwrap_err().code(), "too_long");
    }

    #[test]
    fn history_keys_are_short_alphanumerics() {
        for (raw, parts) in
            [("R12S3", Some((12, 3))), ("R012S3", None), ("R12S", None), ("X12S3", None), ("R1S0", None)]
        {
            let key = HistoryKey::parse(raw).unwrap();
            assert_eq!(key.parts().map(|(r, s)| (r.0, s.0)), parts, "{raw}");
        }
        let key = HistoryKey::derive(RecipientId(u64::MAX), SpanNo(u32::MAX));
        assert_eq!(key.parts().map(|(r, s)| (r.0, s.0)), Some((u64::MAX, u32::MAX)));
        assert!(key.as_str().len() <= HistoryKey::CHARS_MAX);
        assert_eq!(HistoryKey::parse(key.as_str()).unwrap(), key);
        assert_eq!(HistoryKey::derive(RecipientId(12), SpanNo(3)).as_str(), "R12S3");
        assert_eq!(HistoryKey::parse("R1-S2").unwrap_err().code(), "format");
        assert_eq!(HistoryKey::parse(&"A".repeat(51)).unwrap_err().code(), "too_long");
    }
}

//! Key layout of the `register` table of the read-model database ([`crate::db`]).
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `M` | `Mcheckpoint` | last applied position (u64 BE) and its hash |
//! | `M` | `Mconfig` | the configuration text in force |
//! | `M` | `Mformat` | projection format, so a format change forces a rebuild |
//! | `R` | recipient number (u64 BE) | recipient snapshot |
//! | `N` | name key, 0x00, recipient number | (empty): name search |
//! | `K` | kana key, 0x00, recipient number | (empty): kana search |
//! | `Y` | payer number, 0x00, recipient number | (empty) |
//! | `Z` | recipient number text, 0x00, recipient number | (empty) |
//! | `X` | keyed hash of the My Number (32), recipient number | (empty) |
//! | `E` | recipient number | the recipient's PMH entries by span: current and exported record |
//! | `D` | program, 0x00, recipient number | (empty): an entry of the program differs from what PMH has and can be sent (a withdrawal, or a record that passes validation under the configuration in force) |
//! | `H` | program, 0x00, recipient number | the entries of the program that differ from what PMH has and that validation holds back (保留), not yet listed as they are now by a batch: certificate, history key, reasons |
//! | `L` | program, 0x00, recipient number | as `H`, for the held-back entries a batch has listed as they are now (a batch lists only `H`, and counts both) |
//! | `A` | program, 0x00, recipient number | (empty): an entry of the program has a current record |
//! | `F` | program, 0x00, recipient number | the entries of the program whose last sending PMH refused (its registration results): certificate, history key, batch, PMH's code and text, whether corrected since |
//! | `B` | program | last batch: to-position (u64 BE), batch number (u64 BE) |
//! | `V` | recipient number | fee histories by span: what each record was at each position, and when first exported |
//! | `P` | recipient number (u64 BE) | (empty): a DV support measure was ever recorded for the person (never removed), so lists read the stream for the privacy policy only for them |

pub const RECIPIENT: u8 = b'R';
pub const NAME: u8 = b'N';
pub const KANA: u8 = b'K';
pub const PAYER: u8 = b'Y';
pub const RECIPIENT_NUMBER: u8 = b'Z';
pub const MY_NUMBER: u8 = b'X';
pub const ENTRY: u8 = b'E';
pub const DIRTY: u8 = b'D';
pub const HELD: u8 = b'H';
pub const LISTED: u8 = b'L';
pub const ACTIVE: u8 = b'A';
pub const REFUSED: u8 = b'F';
pub const LAST_BATCH: u8 = b'B';
pub const FEE: u8 = b'V';
pub const EVER_PROTECTED: u8 = b'P';

pub const CHECKPOINT: &[u8] = b"Mcheckpoint";
pub const CONFIG: &[u8] = b"Mconfig";
pub const FORMAT: &[u8] = b"Mformat";

pub fn ever_protected(n: u64) -> Vec<u8> {
    let mut k = vec![EVER_PROTECTED];
    k.extend_from_slice(&n.to_be_bytes());
    k
}

pub fn recipient(n: u64) -> Vec<u8> {
    let mut k = vec![RECIPIENT];
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// `prefix`, text, 0x00, recipient number.
pub fn text_index(prefix: u8, text: &str, n: u64) -> Vec<u8> {
    let mut k = text_prefix(prefix, text);
    k.push(0);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// `prefix`, text (no terminator: for prefix search).
pub fn text_prefix(prefix: u8, text: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(text.len() + 10);
    k.push(prefix);
    k.extend_from_slice(text.as_bytes());
    k
}

pub fn my_number(mac: &[u8; 32], n: u64) -> Vec<u8> {
    let mut k = vec![MY_NUMBER];
    k.extend_from_slice(mac);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The recipient's PMH entries.
pub fn entries_of(n: u64) -> Vec<u8> {
    let mut k = vec![ENTRY];
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The recipient's fee histories.
pub fn fees_of(n: u64) -> Vec<u8> {
    let mut k = vec![FEE];
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// `prefix` (`D`, `H`, `L`, `A` or `F`), program, 0x00, recipient number.
pub fn program_marker(prefix: u8, program: &str, n: u64) -> Vec<u8> {
    let mut k = program_prefix(prefix, program);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

pub fn program_prefix(prefix: u8, program: &str) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(program.as_bytes());
    k.push(0);
    k
}

/// The recipient number at the end of a search index, marker, entry or fee key.
pub fn tail_recipient(key: &[u8]) -> Option<u64> {
    let len = key.len();
    Some(u64::from_be_bytes(key.get(len.checked_sub(8)?..)?.try_into().ok()?))
}

pub fn last_batch(program: &str) -> Vec<u8> {
    let mut k = vec![LAST_BATCH];
    k.extend_from_slice(program.as_bytes());
    k
}

pub fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

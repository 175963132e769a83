//! PII scrubbing: e-mail addresses, IPv4 and IPv6 addresses, phone numbers (international
//! formats, North American, Chinese mobile), Chinese resident identity numbers (with their
//! ISO 7064 MOD 11-2 check digit and a real birth date), payment card numbers (Luhn and an
//! issuer prefix), IBANs (MOD 97) and secrets (private-key blocks, cloud and service tokens,
//! `password = …` assignments), each replaced by a typed placeholder such as `<EMAIL>`.
//!
//! Patterns find candidates; checksums and context decide. Look-alikes that must stay: version
//! numbers (`v1.2.3.4`, `1.2.3.4.5`), dates, ISBNs, numbers failing Luhn or the ID checksum.

use crate::doc::Doc;
use crate::stage::{Counters, DocStage, Verdict};
use regex::Regex;
use serde::Deserialize;
use std::sync::LazyLock;

/// The kinds of personal data found, in the order they are looked for (earlier kinds win
/// where two overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Secret,
    Email,
    Iban,
    CnId,
    Card,
    Ipv6,
    Ipv4,
    Phone,
}

impl Kind {
    pub const ALL: [Kind; 8] = [Kind::Secret, Kind::Email, Kind::Iban, Kind::CnId, Kind::Card, Kind::Ipv6, Kind::Ipv4, Kind::Phone];

    /// Name in the TOML and the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Email => "email",
            Kind::Iban => "iban",
            Kind::CnId => "cn_id",
            Kind::Card => "card",
            Kind::Ipv6 => "ipv6",
            Kind::Ipv4 => "ipv4",
            Kind::Phone => "phone",
        }
    }

    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Secret => "<SECRET>",
            Kind::Email => "<EMAIL>",
            Kind::Iban => "<IBAN>",
            Kind::CnId => "<CN_ID>",
            Kind::Card => "<CARD>",
            Kind::Ipv6 => "<IP>",
            Kind::Ipv4 => "<IP>",
            Kind::Phone => "<PHONE>",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// One piece of personal data: its kind and byte span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

fn re(p: &str) -> Regex {
    Regex::new(p).expect("PII pattern")
}

static SECRETS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    vec![
        re(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
        re(r"\bAKIA[0-9A-Z]{16}\b"),
        re(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
        re(r"\bgithub_pat_[A-Za-z0-9_]{22,}\b"),
        re(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),
        re(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
        re(r"\bAIza[0-9A-Za-z_-]{35}\b"),
        re(r"\b[rs]k_live_[0-9A-Za-z]{16,}\b"),
        re(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ]
});
/// `password = "…"` and the like: only the value (group 1) is replaced.
static SECRET_ASSIGN: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"(?i)\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|token|passwd|password)\b["']?\s*[:=]\s*["']?([A-Za-z0-9_\-/+=.]{12,})"#)
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b[a-z0-9][a-z0-9._%+-]*@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,24}\b"));
static IBAN: LazyLock<Regex> = LazyLock::new(|| re(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"));
static CN_ID: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d{17}[\dXx]\b"));
static CARD: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d(?:[ -]?\d){12,18}\b"));
static IPV6: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)(?:[0-9a-f]{1,4}|:)?(?::[0-9a-f]{0,4}){2,7}(?:%[0-9a-z]+)?"));
static IPV4: LazyLock<Regex> = LazyLock::new(|| re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"));
static PHONES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    vec![
        // Chinese mobile: 1[3-9]x xxxx xxxx, optionally +86.
        re(r"(?:\+86[ -]?)?\b1[3-9]\d[ -]?\d{4}[ -]?\d{4}\b"),
        // International: +CC then groups, 8 to 15 digits in all.
        re(r"\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){2,6}\b"),
        // North American: (555) 123-4567, 555-123-4567, 555.123.4567.
        re(r"(?:\(\d{3}\)\s?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b"),
    ]
});

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// The Luhn check payment cards carry.
pub fn luhn(ds: &[u32]) -> bool {
    let sum: u32 = ds.iter().rev().enumerate().map(|(i, &d)| if i % 2 == 1 { let x = d * 2; if x > 9 { x - 9 } else { x } } else { d }).sum();
    !ds.is_empty() && sum.is_multiple_of(10)
}

/// Issuer prefixes of the card networks (Visa, Mastercard, Amex, Discover, JCB, UnionPay,
/// Diners), so that any Luhn-valid run of digits is not taken for a card.
fn card_prefix(ds: &[u32]) -> bool {
    let n = |k: usize| ds.iter().take(k).fold(0u32, |a, &d| a * 10 + d);
    let len = ds.len();
    match ds.first() {
        Some(4) => matches!(len, 13 | 16 | 19),
        Some(5) => (51..=55).contains(&n(2)) && len == 16,
        Some(2) => (2221..=2720).contains(&n(4)) && len == 16,
        Some(3) => (matches!(n(2), 34 | 37) && len == 15) || ((3528..=3589).contains(&n(4)) && len >= 16) || (matches!(n(2), 30 | 36 | 38) && len == 14),
        Some(6) => (n(4) == 6011 || n(2) == 65 || (644..=649).contains(&n(3)) || n(2) == 62) && (16..=19).contains(&len),
        _ => false,
    }
}

/// The check character of a Chinese resident identity number (GB 11643-1999, ISO 7064 MOD 11-2)
/// and a plausible birth date in positions 7–14.
pub fn cn_id_valid(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = b[..17].iter().zip(W).map(|(&c, w)| (c - b'0') as u32 * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    if b[17].to_ascii_uppercase() != check {
        return false;
    }
    let num = |r: std::ops::Range<usize>| id[r].parse::<u32>().unwrap_or(0);
    let (y, m, d) = (num(6..10), num(10..12), num(12..14));
    (1900..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
}

/// IBAN check: letters to numbers, first four characters moved to the end, remainder mod 97 = 1.
pub fn iban_valid(s: &str) -> bool {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&s.len()) {
        return false;
    }
    let mut rem = 0u64;
    for c in s[4..].chars().chain(s[..4].chars()) {
        let v = match c {
            '0'..='9' => c as u64 - '0' as u64,
            'A'..='Z' => c as u64 - 'A' as u64 + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

fn ipv4_valid(text: &str, start: usize, end: usize) -> bool {
    let s = &text[start..end];
    if !s.split('.').all(|o| o.parse::<u32>().is_ok_and(|v| v <= 255) && (o.len() == 1 || !o.starts_with('0'))) {
        return false;
    }
    // Part of a longer dotted run (1.2.3.4.5) or a version (v1.2.3.4, version 1.2.3.4).
    let before = &text[..start];
    let after = &text[end..];
    if before.ends_with('.') || after.starts_with('.') && after[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return false;
    }
    let tail: String = before.chars().rev().take(9).collect::<String>().chars().rev().collect::<String>().to_lowercase();
    !(tail.ends_with('v') || tail.trim_end().ends_with("version") || tail.trim_end().ends_with("ver."))
}

fn phone_valid(text: &str, start: usize, end: usize) -> bool {
    let n = digits(&text[start..end]).len();
    if !(8..=15).contains(&n) {
        return false;
    }
    // Not a piece of a longer number, nor an ISBN.
    let prev = text[..start].chars().next_back();
    let next = text[end..].chars().next();
    if prev.is_some_and(|c| c.is_ascii_digit() || c == '-') || next.is_some_and(|c| c.is_ascii_digit() || c == '-') {
        return false;
    }
    let ctx: String = text[..start].chars().rev().take(12).collect::<String>().to_uppercase();
    !ctx.contains("NBSI")
}

/// Every piece of personal data of the `kinds` asked for in `text`, in text order, without
/// overlaps.
pub fn scan(text: &str, kinds: &[Kind]) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let push = |found: &mut Vec<Found>, kind: Kind, start: usize, end: usize| {
        if !found.iter().any(|f| start < f.end && f.start < end) {
            found.push(Found { kind, start, end });
        }
    };
    for &kind in Kind::ALL.iter().filter(|k| kinds.contains(k)) {
        match kind {
            Kind::Secret => {
                for r in SECRETS.iter() {
                    for m in r.find_iter(text) {
                        push(&mut found, kind, m.start(), m.end());
                    }
                }
                for c in SECRET_ASSIGN.captures_iter(text) {
                    let g = c.get(1).expect("group 1");
                    // A value that is a plain word ("password = changeme_please") is not a
                    // secret; ask for a digit or mixed case as well as the length.
                    let v = g.as_str();
                    let mixed = v.chars().any(|c| c.is_ascii_digit()) || (v.chars().any(|c| c.is_ascii_uppercase()) && v.chars().any(|c| c.is_ascii_lowercase()));
                    if mixed {
                        push(&mut found, kind, g.start(), g.end());
                    }
                }
            }
            Kind::Email => EMAIL.find_iter(text).for_each(|m| push(&mut found, kind, m.start(), m.end())),
            Kind::Iban => IBAN.find_iter(text).filter(|m| iban_valid(m.as_str())).for_each(|m| push(&mut found, kind, m.start(), m.end())),
            Kind::CnId => CN_ID.find_iter(text).filter(|m| cn_id_valid(m.as_str())).for_each(|m| push(&mut found, kind, m.start(), m.end())),
            Kind::Card => CARD
                .find_iter(text)
                .filter(|m| {
                    let ds = digits(m.as_str());
                    luhn(&ds) && card_prefix(&ds)
                })
                .for_each(|m| push(&mut found, kind, m.start(), m.end())),
            Kind::Ipv6 => IPV6
                .find_iter(text)
                .filter(|m| {
                    let s = m.as_str().split('%').next().unwrap_or("");
                    // Wikitext indentation ("::A tendency") and paths ("std::fs") parse too:
                    // ask for a digit and two groups, the loopback ::1 aside.
                    let groups = s.split(':').filter(|g| !g.is_empty()).count();
                    let plausible = s == "::1" || (groups >= 2 && s.chars().any(|c| c.is_ascii_digit()));
                    plausible && s.matches(':').count() >= 2 && s.parse::<std::net::Ipv6Addr>().is_ok()
                })
                .for_each(|m| push(&mut found, kind, m.start(), m.end())),
            Kind::Ipv4 => IPV4.find_iter(text).filter(|m| ipv4_valid(text, m.start(), m.end())).for_each(|m| push(&mut found, kind, m.start(), m.end())),
            Kind::Phone => {
                for r in PHONES.iter() {
                    for m in r.find_iter(text) {
                        if phone_valid(text, m.start(), m.end()) {
                            push(&mut found, kind, m.start(), m.end());
                        }
                    }
                }
            }
        }
    }
    found.sort_by_key(|f| f.start);
    found
}

/// `text` with every piece of personal data replaced by its placeholder.
pub fn scrub(text: &str, kinds: &[Kind], counters: &mut Counters) -> String {
    let found = scan(text, kinds);
    if found.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in found {
        out.push_str(&text[at..f.start]);
        out.push_str(f.kind.placeholder());
        counters.add(f.kind.name(), 1);
        at = f.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The PII stage's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PiiConfig {
    /// Which kinds to replace: any of secret, email, iban, cn_id, card, ipv6, ipv4, phone.
    pub kinds: Vec<String>,
}

impl Default for PiiConfig {
    fn default() -> Self {
        PiiConfig { kinds: Kind::ALL.iter().map(|k| k.name().to_string()).collect() }
    }
}

/// The stage: scrubs, never drops.
#[derive(Debug, Clone)]
pub struct Pii {
    kinds: Vec<Kind>,
}

impl Pii {
    pub fn new(cfg: &PiiConfig) -> Result<Self, String> {
        let kinds = cfg
            .kinds
            .iter()
            .map(|k| Kind::parse(k).ok_or_else(|| format!("unknown PII kind `{k}`; use any of: {}", Kind::ALL.map(Kind::name).join(", "))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pii { kinds })
    }
}

impl DocStage for Pii {
    fn name(&self) -> &'static str {
        "pii"
    }
    fn apply(&self, doc: &mut Doc, counters: &mut Counters) -> Verdict {
        doc.text = scrub(&doc.text, &self.kinds, counters);
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_in(text: &str) -> Vec<(&'static str, String)> {
        scan(text, &Kind::ALL).into_iter().map(|f| (f.kind.name(), text[f.start..f.end].to_string())).collect()
    }

    #[test]
    fn luhn_and_id_checksums_by_hand() {
        // 4111 1111 1111 1111: doubled odd positions from the right give 8·… sum 30 → valid.
        assert!(luhn(&digits("4111111111111111")));
        assert!(!luhn(&digits("4111111111111112")));
        // 11010519491231002X: weighted sum 1·7+1·9+0·10+1·5+0·8+5·4+1·2+9·1+4·6+9·3+1·7+2·9+3·10+1·5+0·8+0·4+2·2 = 167,
        // 167 mod 11 = 2 → check character "X".
        assert!(cn_id_valid("11010519491231002X"));
        assert!(!cn_id_valid("110105194912310021"));
        // Exactly one check character fits a real date; none fits a 13th month.
        assert_eq!("0123456789X".chars().filter(|c| cn_id_valid(&format!("11010519491231002{c}"))).count(), 1);
        assert_eq!("0123456789X".chars().filter(|c| cn_id_valid(&format!("11010519491331002{c}"))).count(), 0);
        assert!(iban_valid("GB82 WEST 1234 5698 7654 32"));
        assert!(!iban_valid("GB82 WEST 1234 5698 7654 33"));
    }

    #[test]
    fn scrub_replaces_each_kind_with_its_placeholder_and_counts() {
        let mut c = Counters::default();
        let t = "Mail li.lei@example.com or call +44 20 7946 0958, 手机 138 0013 8000, server 192.168.1.20.";
        let out = scrub(t, &Kind::ALL, &mut c);
        assert_eq!(out, "Mail <EMAIL> or call <PHONE>, 手机 <PHONE>, server <IP>.");
        assert_eq!(c.0["email"], 1);
        assert_eq!(c.0["phone"], 2);
        assert_eq!(c.0["ipv4"], 1);
    }

    #[test]
    fn look_alikes_stay() {
        for t in [
            "Upgrade to v1.2.3.4 today.",
            "version 10.0.19041.1 is out",
            "The meeting is on 2026-12-04 at 10:30:00.",
            "ISBN 978-3-16-148410-0 is printed on the back.",
            "Order number 4111111111111112 is not a card.",
            "ID 110105194912310021 fails its checksum.",
            "Route 1.2.3.4.5 in the manual.",
            "a \"Wall Street Game.\"\n\n::A tendency towards reciprocity",
            "use std::fs::File and dead::beef here",
        ] {
            assert_eq!(kinds_in(t), vec![], "{t}");
        }
    }

    #[test]
    fn secrets_and_ipv6() {
        let t = "key AKIAIOSFODNN7EXAMPLE and password = \"Tr0ub4dor3xyz\" via 2001:db8::8a2e:370:7334";
        let k = kinds_in(t);
        assert_eq!(k, vec![("secret", "AKIAIOSFODNN7EXAMPLE".to_string()), ("secret", "Tr0ub4dor3xyz".to_string()), ("ipv6", "2001:db8::8a2e:370:7334".to_string())]);
    }
}

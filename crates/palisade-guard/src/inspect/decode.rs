//! Decoding before inspection: what a server or a browser would turn the
//! value into, so that encoding cannot hide a payload.
//!
//! - URL decoding (`%XX`, IIS `%uXXXX`, `+` as a space in query and form
//!   values), repeated while it changes, at most [`URL_ROUNDS`] times: double
//!   and triple encodings (`%252e`) come out as the character.
//! - Overlong UTF-8 forms of ASCII (`%c0%af` for `/`, `%e0%80%ae` for `.`):
//!   old IIS and Tomcat decoded them, so they are folded to the character.
//! - Invalid UTF-8 is replaced by U+FFFD, never an error.
//! - Unicode NFKC when the value has non-ASCII characters: full-width forms
//!   (`ｓｅｌｅｃｔ`, `＜`) become their ASCII letters. Zero-width and other
//!   invisible format characters are removed, NUL bytes too (their presence
//!   is remembered: a NUL in a path is a truncation trick).
//! - HTML character references (`&#x6a;`, `&#106`, `&colon;`, `&Tab;`) as a
//!   separate step, [`html_unescape`], for the detectors where a browser
//!   would decode them.
//!
//! Every step is one pass over its input, and the number of steps is fixed,
//! so the work per value is linear in its length.

use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization;

/// The most URL-decoding rounds: enough for triple encoding, bounded so a
/// crafted value cannot make decoding loop.
pub const URL_ROUNDS: usize = 3;

/// How a raw value is encoded where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A query or form value: `+` is a space, `%XX` escapes.
    Form,
    /// A URL path segment or header: `%XX` escapes, `+` stays.
    Url,
    /// Already decoded text (a JSON string): only repeated `%` decoding,
    /// because applications often decode once more.
    Text,
}

/// A value ready for the detectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The decoded, normalized text.
    pub text: String,
    /// Whether the value held a NUL (raw or encoded).
    pub had_nul: bool,
    /// Whether any decoding changed the value (it was encoded at all).
    pub was_encoded: bool,
    /// Bytes processed by every pass, for the work bound.
    pub work: u64,
}

/// Decodes `raw` as found with `encoding`.
pub fn decode(raw: &[u8], encoding: Encoding) -> Decoded {
    let mut work = raw.len() as u64;
    let mut bytes: Cow<'_, [u8]> = Cow::Borrowed(raw);
    let mut was_encoded = false;
    for round in 0..URL_ROUNDS {
        let plus = round == 0 && encoding == Encoding::Form;
        if !needs_url_decoding(&bytes, plus) {
            break;
        }
        work += bytes.len() as u64;
        let decoded = url_decode(&bytes, plus);
        if decoded.as_slice() == &*bytes {
            break;
        }
        was_encoded = true;
        bytes = Cow::Owned(decoded);
    }
    if bytes.iter().any(|&b| b >= 0xC0) {
        work += bytes.len() as u64;
        if let Some(folded) = fold_overlong(&bytes) {
            was_encoded = true;
            bytes = Cow::Owned(folded);
        }
    }
    let had_nul = bytes.contains(&0);
    // A decoded copy that is valid UTF-8 becomes the text as it is.
    let text: Cow<'_, str> = match bytes {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(v) => Cow::Owned(
            String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
    };
    let text = if text.is_ascii() {
        if had_nul {
            text.replace('\0', "")
        } else {
            text.into_owned()
        }
    } else {
        work += 2 * text.len() as u64;
        normalize_unicode(&text)
    };
    Decoded {
        text,
        had_nul,
        was_encoded,
        work,
    }
}

fn needs_url_decoding(bytes: &[u8], plus: bool) -> bool {
    bytes.iter().any(|&b| b == b'%' || (plus && b == b'+'))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One round of `%XX` / `%uXXXX` decoding; malformed escapes stay as they are.
pub fn url_decode(input: &[u8], plus_as_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        // The bytes up to the next `%` (or `+`) are copied as one run.
        let run = input[i..]
            .iter()
            .position(|&b| b == b'%' || (plus_as_space && b == b'+'))
            .unwrap_or(input.len() - i);
        out.extend_from_slice(&input[i..i + run]);
        i += run;
        let Some(&b) = input.get(i) else {
            break;
        };
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            if matches!(input.get(i + 1), Some(b'u' | b'U')) {
                let digits = input.get(i + 2..i + 6).map(|d| {
                    d.iter()
                        .try_fold(0u32, |acc, &c| hex(c).map(|v| acc << 4 | u32::from(v)))
                });
                if let Some(Some(code)) = digits {
                    let c = char::from_u32(code).unwrap_or('\u{fffd}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    continue;
                }
            }
            out.push(b);
        } else if b == b'+' && plus_as_space {
            out.push(b' ');
        } else {
            out.push(b);
        }
        i += 1;
    }
    out
}

/// Replaces overlong UTF-8 encodings of ASCII characters by the character.
/// `None` when there were none.
fn fold_overlong(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // Lead bytes whose whole sequence can only encode a code point < 0x80
        // when the following bytes are continuation bytes: C0/C1 (2 bytes),
        // E0 80..9F (3), F0 80..8F (4), F8 (5), FC (6).
        let len = match b {
            0xC0 | 0xC1 => 2,
            0xE0 if bytes.get(i + 1).is_some_and(|&c| c & 0xE0 == 0x80) => 3,
            0xF0 if bytes.get(i + 1).is_some_and(|&c| c & 0xF0 == 0x80) => 4,
            0xF8 => 5,
            0xFC => 6,
            _ => 0,
        };
        let tail = if len > 0 {
            bytes.get(i + 1..i + len)
        } else {
            None
        };
        if let Some(tail) = tail.filter(|t| t.iter().all(|&c| c & 0xC0 == 0x80)) {
            let lead_bits = u32::from(b) & (0x7F >> len);
            let code = tail
                .iter()
                .fold(lead_bits, |acc, &c| acc << 6 | u32::from(c & 0x3F));
            if code < 0x80 {
                let o = out.get_or_insert_with(|| bytes[..i].to_vec());
                // Only the low 7 bits survive in the decoders that accepted these.
                o.push((code & 0x7F) as u8);
                i += len;
                continue;
            }
        }
        if let Some(o) = out.as_mut() {
            o.push(b);
        }
        i += 1;
    }
    out
}

/// NFKC, minus invisible characters (zero-width characters, bidi and other
/// format controls, NUL), plus the look-alikes NFKC keeps.
fn normalize_unicode(text: &str) -> String {
    text.nfkc()
        .filter(|&c| !is_invisible(c))
        .map(|c| match c {
            // NFKC keeps these look-alikes of `<`, `>`, quotes and `/`.
            '\u{2039}' | '\u{3008}' | '\u{27E8}' => '<',
            '\u{203A}' | '\u{3009}' | '\u{27E9}' => '>',
            '\u{2018}' | '\u{2019}' | '\u{02BC}' => '\'',
            '\u{201C}' | '\u{201D}' => '"',
            '\u{2215}' | '\u{2044}' => '/',
            '\u{2216}' => '\\',
            c => c,
        })
        .collect()
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\0'
        | '\u{00AD}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}'
    )
}

/// Decodes HTML character references, as a browser does in text and
/// attribute values: numeric ones with or without `;` (leading zeros and
/// all), and the named ones that matter for markup and script. Two rounds,
/// for `&amp;lt;`. `Cow::Borrowed` when there are none.
pub fn html_unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let once = unescape_round(text);
    if once.contains('&') && once != text {
        let twice = unescape_round(&once);
        return Cow::Owned(twice);
    }
    if once == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(once)
    }
}

fn unescape_round(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'&' {
            i += 1;
            continue;
        }
        if let Some((c, len)) = reference_at(&bytes[i..]) {
            out.push_str(&text[copied..i]);
            out.push(c);
            i += len;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The character and length of the reference starting at `s[0] == b'&'`.
fn reference_at(s: &[u8]) -> Option<(char, usize)> {
    if s.get(1) == Some(&b'#') {
        let (radix, start) = match s.get(2) {
            Some(b'x' | b'X') => (16, 3),
            _ => (10, 2),
        };
        let mut end = start;
        let mut code: u32 = 0;
        while let Some(&d) = s.get(end) {
            let Some(v) = (d as char).to_digit(radix) else {
                break;
            };
            // Saturate instead of overflowing: a huge number is U+FFFD anyway.
            code = code.saturating_mul(radix).saturating_add(v).min(0x11_0000);
            end += 1;
        }
        if end == start {
            return None;
        }
        if s.get(end) == Some(&b';') {
            end += 1;
        }
        let c = char::from_u32(code)
            .filter(|&c| c != '\0')
            .unwrap_or('\u{fffd}');
        return Some((c, end));
    }
    let mut end = 1;
    while end < s.len() && end <= 12 && s[end].is_ascii_alphanumeric() {
        end += 1;
    }
    let name = std::str::from_utf8(&s[1..end]).ok()?;
    let c = named_reference(name)?;
    let len = if s.get(end) == Some(&b';') {
        end + 1
    } else {
        end
    };
    Some((c, len))
}

fn named_reference(name: &str) -> Option<char> {
    Some(match name {
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "amp" | "AMP" => '&',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "Tab" => '\t',
        "NewLine" => '\n',
        "colon" => ':',
        "semi" => ';',
        "lpar" => '(',
        "rpar" => ')',
        "sol" => '/',
        "bsol" => '\\',
        "grave" | "DiacriticalGrave" => '`',
        "equals" => '=',
        "excl" => '!',
        "quest" => '?',
        "num" => '#',
        "percnt" => '%',
        "plus" => '+',
        "comma" => ',',
        "period" => '.',
        "lsqb" | "lbrack" => '[',
        "rsqb" | "rbrack" => ']',
        "lcub" | "lbrace" => '{',
        "rcub" | "rbrace" => '}',
        "ast" | "midast" => '*',
        "dollar" => '$',
        "verbar" | "vert" | "VerticalLine" => '|',
        "lowbar" | "UnderBar" => '_',
        "hyphen" | "dash" => '-',
        "Hat" => '^',
        "commat" => '@',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`url_decode`] as it was, one byte at a time: the reference.
    fn url_decode_bytewise(input: &[u8], plus_as_space: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            if b == b'%' {
                if let (Some(h), Some(l)) = (
                    input.get(i + 1).copied().and_then(hex),
                    input.get(i + 2).copied().and_then(hex),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                if matches!(input.get(i + 1), Some(b'u' | b'U')) {
                    let digits = input.get(i + 2..i + 6).map(|d| {
                        d.iter()
                            .try_fold(0u32, |acc, &c| hex(c).map(|v| acc << 4 | u32::from(v)))
                    });
                    if let Some(Some(code)) = digits {
                        let c = char::from_u32(code).unwrap_or('\u{fffd}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += 6;
                        continue;
                    }
                }
                out.push(b);
            } else if b == b'+' && plus_as_space {
                out.push(b' ');
            } else {
                out.push(b);
            }
            i += 1;
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Copying runs between escapes decodes exactly as byte by byte.
        #[test]
        fn run_copying_decodes_like_the_bytewise_loop(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("%".to_owned()),
                    proptest::strategy::Just("+".to_owned()),
                    proptest::strategy::Just("%u".to_owned()),
                    proptest::strategy::Just("%U00".to_owned()),
                    "[0-9a-fA-FgzG]{1,3}",
                    "[ -~]{0,4}",
                    proptest::strategy::Just("é".to_owned()),
                ],
                0..16,
            ),
            plus: bool,
        ) {
            let input: String = parts.concat();
            proptest::prop_assert_eq!(
                url_decode(input.as_bytes(), plus),
                url_decode_bytewise(input.as_bytes(), plus)
            );
        }
    }

    fn text(raw: &str, encoding: Encoding) -> String {
        decode(raw.as_bytes(), encoding).text
    }

    #[test]
    fn decodes_single_double_and_triple_url_encoding() {
        assert_eq!(text("1%27%20or%201%3D1", Encoding::Form), "1' or 1=1");
        assert_eq!(text("%252e%252e%252f", Encoding::Url), "../");
        assert_eq!(text("%25252e", Encoding::Url), ".");
        assert_eq!(text("a+b", Encoding::Form), "a b");
        assert_eq!(text("a+b", Encoding::Url), "a+b");
        // Malformed escapes stay.
        assert_eq!(text("100%+sure%zz", Encoding::Form), "100% sure%zz");
    }

    #[test]
    fn decodes_iis_unicode_escapes_and_overlong_utf8() {
        assert_eq!(text("%u002e%u002e%u2215", Encoding::Url), "../");
        assert_eq!(text("..%c0%af..%c1%9c", Encoding::Url), "../..\\");
        assert_eq!(text("%e0%80%ae%e0%80%ae/", Encoding::Url), "../");
        assert_eq!(text("%f8%80%80%80%ae", Encoding::Url), ".");
    }

    #[test]
    fn folds_full_width_forms_and_drops_invisible_characters() {
        assert_eq!(text("ｓｅｌｅｃｔ＊", Encoding::Text), "select*");
        assert_eq!(text("＜script＞", Encoding::Text), "<script>");
        assert_eq!(text("un\u{200b}ion", Encoding::Text), "union");
        let d = decode(b"../etc/passwd%00.png", Encoding::Url);
        assert!(d.had_nul);
        assert_eq!(d.text, "../etc/passwd.png");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let d = decode(b"ab\xff\xfe%ff", Encoding::Url);
        assert_eq!(d.text, "ab\u{fffd}\u{fffd}\u{fffd}");
    }

    #[test]
    fn unescapes_html_references_like_a_browser() {
        assert_eq!(html_unescape("&#106;avascript&colon;"), "javascript:");
        assert_eq!(html_unescape("&#x6A&#X61"), "ja");
        assert_eq!(html_unescape("&#0000060;"), "<");
        assert_eq!(html_unescape("&amp;lt;script&amp;gt;"), "<script>");
        assert_eq!(html_unescape("java&Tab;script"), "java\tscript");
        assert_eq!(html_unescape("AT&T &unknown;"), "AT&T &unknown;");
        assert!(matches!(html_unescape("plain"), Cow::Borrowed(_)));
        assert_eq!(html_unescape("&#99999999999999999999;"), "\u{fffd}");
    }
}

//! The prefilter: one pass over a value that says which detectors could
//! fire on it at all, so an ordinary value (a name, an address, a date, a
//! sentence) costs one table lookup per byte instead of four detectors.
//!
//! Each gate is a *necessary condition* of every rule of its detector, at
//! every level: when a gate is closed, the detector provably finds nothing,
//! so skipping it changes no verdict (the unit tests here and in
//! [`super`] compare the results with and without the prefilter on the
//! labelled corpus and on random inputs). Why each gate holds:
//!
//! - **SQL** ([`sql_possible`]): a pattern for the quote contexts needs the
//!   quote byte (those contexts are only tokenized when it is there); every
//!   other pattern needs a token of one of the kinds `& ; B T U E ( ) c`
//!   (checked on the compiled patterns by a test in [`super::sql`]). Those
//!   tokens come only from the bytes `;`, `(`, `)`, `#`, the pairs `||`,
//!   `&&`, `--`, `/*` (which also guards the comment-stripped second pass
//!   and `/*!`), or from keywords (`AND`, `UNION`, `SELECT`, `WAITFOR`,
//!   `WHERE`, `ORDER BY`, ...). The dangerous-function rule needs one of the
//!   names [`super::sql::fingerprint`] lists; the info-function rule needs
//!   `(`.
//! - **XSS**: the scanner's own first test (one of `< : = ( ` { `), or `&`,
//!   because character references may decode to those.
//! - **Traversal**: the detector's own first test (`/`, `\`, `:` or `..`).
//! - **Command injection**: at level 1 a separator, `$` or `(`, or else
//!   (with `/` or `%`, the detector's own first test) one of the words
//!   every shell token that needs none of those bytes has ([`has_shell_word`]:
//!   `bin/`, `cmd`, `powershell`, `%comspec%`); it always runs at levels 2
//!   and 3.

use super::sql::fingerprint::is_dangerous_qualified_tail;

/// `'` or `"`.
pub(crate) const QUOTE: u32 = 1;
/// `;`.
pub(crate) const SEMI: u32 = 1 << 1;
/// `(` or `)`.
pub(crate) const PAREN: u32 = 1 << 2;
/// `#`.
pub(crate) const HASH: u32 = 1 << 3;
/// `|`.
pub(crate) const PIPE: u32 = 1 << 4;
/// `&`.
pub(crate) const AMP: u32 = 1 << 5;
/// `-`.
pub(crate) const DASH: u32 = 1 << 6;
/// `/`.
pub(crate) const SLASH: u32 = 1 << 7;
/// `\`.
pub(crate) const BACKSLASH: u32 = 1 << 8;
/// `<`.
pub(crate) const LT: u32 = 1 << 9;
/// `:`.
pub(crate) const COLON: u32 = 1 << 10;
/// `=`.
pub(crate) const EQ: u32 = 1 << 11;
/// `` ` ``.
pub(crate) const BACKTICK: u32 = 1 << 12;
/// `{`.
pub(crate) const BRACE: u32 = 1 << 13;
/// `.`.
pub(crate) const DOT: u32 = 1 << 14;
/// `\n` or `\r`.
pub(crate) const NEWLINE: u32 = 1 << 15;
/// `$`.
pub(crate) const DOLLAR: u32 = 1 << 16;
/// `%`.
pub(crate) const PERCENT: u32 = 1 << 17;
/// `+`.
pub(crate) const PLUS: u32 = 1 << 18;
/// A byte of a non-ASCII character (or invalid UTF-8).
pub(crate) const HIGH: u32 = 1 << 19;
/// NUL.
pub(crate) const NUL: u32 = 1 << 20;
/// Any other byte but letters, digits and `_` (space, `,`, `@`, ...).
pub(crate) const OTHER: u32 = 1 << 21;

const fn class(b: u8) -> u32 {
    match b {
        b'\'' | b'"' => QUOTE,
        b';' => SEMI,
        b'(' | b')' => PAREN,
        b'#' => HASH,
        b'|' => PIPE,
        b'&' => AMP,
        b'-' => DASH,
        b'/' => SLASH,
        b'\\' => BACKSLASH,
        b'<' => LT,
        b':' => COLON,
        b'=' => EQ,
        b'`' => BACKTICK,
        b'{' => BRACE,
        b'.' => DOT,
        b'\n' | b'\r' => NEWLINE,
        b'$' => DOLLAR,
        b'%' => PERCENT,
        b'+' => PLUS,
        0 => NUL,
        0x80..=0xFF => HIGH,
        b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'_' => 0,
        _ => OTHER,
    }
}

static CLASSES: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = class(b as u8);
        b += 1;
    }
    table
};

/// The classes of the bytes in `bytes`, or-ed together.
pub(crate) fn classes(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0, |mask, &b| mask | CLASSES[usize::from(b)])
}

/// The prefilter's form of the level 1 shortcut (`super::is_plain_token`):
/// at most 256 letters, digits, `_`, `.` and `-`, with no `..` or `--`.
pub(crate) fn is_plain_token(bytes: &[u8], mask: u32) -> bool {
    bytes.len() <= 256
        && mask & !(DOT | DASH) == 0
        && !(mask & DOT != 0 && has_pair(bytes, b".."))
        && !(mask & DASH != 0 && has_pair(bytes, b"--"))
}

/// Whether `pair` occurs in `bytes`: eight positions at a time, comparing
/// the word at `i` with the first byte and the word at `i + 1` with the
/// second (the same answer as `bytes.windows(2).any(|w| w == pair)`, see
/// the proptest).
fn has_pair(bytes: &[u8], pair: &[u8; 2]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOWS: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // The high bit of each byte of `x` that is zero, exactly: no borrow or
    // carry crosses bytes, so every bit is right (not only the lowest).
    let zeros = |x: u64| !(((x & LOWS) + LOWS) | x | LOWS);
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let (first, second) = (ONES * u64::from(pair[0]), ONES * u64::from(pair[1]));
    let mut i = 0;
    while i + 9 <= bytes.len() {
        if zeros(word(i) ^ first) & zeros(word(i + 1) ^ second) != 0 {
            return true;
        }
        i += 8;
    }
    bytes[i..].windows(2).any(|w| w == pair)
}

/// Which detectors could fire on a decoded value whose byte classes are
/// `mask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gates {
    pub sqli: bool,
    /// Whether the SQL detector's unquoted context could match: false when
    /// only a quote opened [`Self::sqli`] (see [`sql_possible`]).
    pub sqli_bare: bool,
    /// Whether SQL could match without `'`, `"`, `;`, `(` and `)`: the
    /// keyword, comment and operator test of [`sql_possible`], which the SQL
    /// detector's unquoted test needs too and reads from here instead of
    /// scanning the words again.
    pub sqli_strong: bool,
    pub xss: bool,
    pub traversal: bool,
    pub cmdi: bool,
}

impl Gates {
    /// The gates for `text` (whose classes are `mask`) at `level`. `want_sqli`
    /// false skips the SQL word scan when SQL is not wanted anyway.
    pub(crate) fn of(text: &[u8], mask: u32, level: u8, want_sqli: bool) -> Self {
        // `sql_possible(text, mask & !QUOTE)`, split so that the part
        // without `;`, `(` and `)` is kept for the SQL detector.
        let sqli_strong = want_sqli && sql_possible(text, mask & !(QUOTE | SEMI | PAREN));
        let sqli_bare = sqli_strong || (want_sqli && mask & (SEMI | PAREN) != 0);
        Self {
            sqli: sqli_bare || (want_sqli && mask & QUOTE != 0),
            sqli_bare,
            sqli_strong,
            xss: mask & (LT | COLON | EQ | PAREN | BACKTICK | BRACE | AMP) != 0,
            traversal: mask & (SLASH | BACKSLASH | COLON) != 0
                || (mask & DOT != 0 && has_pair(text, b"..")),
            cmdi: level >= 2
                || mask & (SEMI | PIPE | AMP | BACKTICK | NEWLINE | DOLLAR | PAREN) != 0
                || (mask & (SLASH | PERCENT) != 0 && has_shell_word(text)),
        }
    }
}

/// Whether `text` has, in any case, a word that every shell token of the
/// command detector without a separator, `$` or `(` contains: `/bin/sh`,
/// `/usr/bin/id`, ... have `bin/`; `cmd /c` and `cmd.exe` have `cmd`;
/// `powershell -` and `%comspec%` themselves. Without one, and without
/// separators, `$` and `(`, no level 1 command rule can match (a test checks
/// the token list).
pub(crate) fn has_shell_word(text: &[u8]) -> bool {
    (0..text.len()).any(|i| {
        // `%` is 0x25, which `| 0x20` keeps.
        matches!(text[i] | 0x20, b'b' | b'c' | b'p' | b'%')
            && SHELL_WORDS.iter().any(|w| {
                text.get(i..i + w.len())
                    .is_some_and(|t| t.eq_ignore_ascii_case(w))
            })
    })
}

/// The words of [`has_shell_word`].
pub(crate) const SHELL_WORDS: [&[u8]; 4] = [b"bin/", b"cmd", b"powershell", b"%comspec%"];

/// Whether some SQL rule could match `text` (classes `mask`); see the module
/// documentation. With [`QUOTE`] taken out of `mask`, whether a rule could
/// match in the unquoted context: there a quote only starts a string token,
/// and the patterns of that context, the dangerous and info calls and the
/// executable comment all need one of the other triggers.
pub(crate) fn sql_possible(text: &[u8], mask: u32) -> bool {
    if mask & (QUOTE | SEMI | PAREN | HASH) != 0 {
        return true;
    }
    if (mask & PIPE != 0 && has_pair(text, b"||"))
        || (mask & AMP != 0 && has_pair(text, b"&&"))
        || (mask & DASH != 0 && has_pair(text, b"--"))
        || (mask & SLASH != 0 && has_pair(text, b"/*"))
    {
        return true;
    }
    has_sql_word(text)
}

/// Letters and `_`: the bytes of a keyword or function name.
static RUN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphabetic() || b == b'_' as usize;
        b += 1;
    }
    table
};

fn is_run_byte(b: u8) -> bool {
    RUN_BYTES[usize::from(b)]
}

/// Whether `text` has a word the SQL tokenizer could read as a keyword that
/// a pattern needs, or as a dangerous function's name.
///
/// A word token of the tokenizer ends where the bytes stop being letters,
/// digits, `_`, `.` or non-ASCII, so a keyword or name (letters and `_`)
/// ends a maximal run of letters and `_` that is not followed by a digit,
/// `.` or a non-ASCII byte. It starts the run, except after a number glued
/// to it (`1union`, and `0xfor`, where the hexadecimal digits take `0xf`):
/// when the run follows a digit every suffix is tried.
pub(crate) fn has_sql_word(text: &[u8]) -> bool {
    let mut i = 0;
    while i < text.len() {
        if !is_run_byte(text[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && is_run_byte(text[i]) {
            i += 1;
        }
        if text
            .get(i)
            .is_some_and(|&b| b.is_ascii_digit() || b == b'.' || b >= 0x80)
        {
            continue;
        }
        let run = &text[start..i];
        let before = start.checked_sub(1).map(|p| text[p]);
        if is_sql_word(run, before == Some(b'.')) {
            return true;
        }
        if before.is_some_and(|b| b.is_ascii_digit())
            && (1..run.len()).any(|k| is_sql_word(&run[k..], false))
        {
            return true;
        }
    }
    false
}

/// The words of [`has_sql_word`], lower case: every word the tokenizer's
/// `classify` reads as `AND`/`OR` (`&`), a union (`U`), a statement (`E`),
/// a control word (`T`) or a clause (`B`), the first words of `ORDER BY`
/// and `GROUP BY`, and the dangerous function names. Tests check the list
/// against `classify` (every word literal in its source) and the names.
const SQL_WORDS: &[&str] = &[
    "and",
    "or",
    "xor",
    "union",
    "intersect",
    "except",
    "select",
    "insert",
    "update",
    "delete",
    "drop",
    "create",
    "alter",
    "truncate",
    "exec",
    "execute",
    "declare",
    "shutdown",
    "grant",
    "revoke",
    "handler",
    "rename",
    "dbcc",
    "bulk",
    "call",
    "waitfor",
    "goto",
    "limit",
    "having",
    "procedure",
    "where",
    "order",
    "group",
    "sleep",
    "pg_sleep",
    "benchmark",
    "load_file",
    "extractvalue",
    "updatexml",
    "xp_cmdshell",
    "xp_dirtree",
    "xp_regread",
    "sp_executesql",
    "sp_oacreate",
    "sp_makewebtask",
    "sp_password",
    "openrowset",
    "opendatasource",
    "pg_read_file",
    "pg_ls_dir",
    "lo_import",
    "randomblob",
    "sys_eval",
    "sys_exec",
    "name_const",
    "outfile",
    "dumpfile",
];

/// For each byte, bit `n` set when a word of [`SQL_WORDS`] of length `n`
/// starts with it (in either case): most words of ordinary text are turned
/// down on this alone, before being lower-cased and looked up.
static SQL_WORD_LENGTHS: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut j = 0;
    while j < SQL_WORDS.len() {
        let w = SQL_WORDS[j].as_bytes();
        let bit = 1u32 << w.len();
        table[w[0] as usize] |= bit;
        table[w[0].to_ascii_uppercase() as usize] |= bit;
        j += 1;
    }
    table
};

/// The longest word of [`SQL_WORDS`].
const MAX_SQL_WORD: usize = 16;

/// A word of at most [`MAX_SQL_WORD`] bytes as one number: its bytes, little
/// endian, zero-padded. Two words of the same length are equal exactly when
/// their keys are.
const fn word_key(word: &[u8]) -> u128 {
    let mut key = 0u128;
    let mut k = 0;
    while k < word.len() {
        key |= (word[k] as u128) << (8 * k);
        k += 1;
    }
    key
}

/// The keys of [`SQL_WORDS`], in its order.
static SQL_WORD_KEYS: [u128; SQL_WORDS.len()] = {
    let mut keys = [0u128; SQL_WORDS.len()];
    let mut j = 0;
    while j < SQL_WORDS.len() {
        keys[j] = word_key(SQL_WORDS[j].as_bytes());
        j += 1;
    }
    keys
};

/// For the low five bits of a word's first byte (the same for both cases
/// of a letter) and its length, bit `j` set when [`SQL_WORDS`]`[j]` could
/// be it: the keys to compare, usually one.
static SQL_WORD_BUCKETS: [[u64; MAX_SQL_WORD + 1]; 32] = {
    assert!(SQL_WORDS.len() <= 64);
    let mut table = [[0u64; MAX_SQL_WORD + 1]; 32];
    let mut j = 0;
    while j < SQL_WORDS.len() {
        let w = SQL_WORDS[j].as_bytes();
        assert!(w.len() <= MAX_SQL_WORD);
        table[(w[0] & 0x1F) as usize][w.len()] |= 1 << j;
        j += 1;
    }
    table
};

fn is_sql_word(word: &[u8], after_dot: bool) -> bool {
    if after_dot && is_dangerous_qualified_tail(word) {
        return true;
    }
    if word.len() < 2
        || word.len() > MAX_SQL_WORD
        || SQL_WORD_LENGTHS[usize::from(word[0])] & (1 << word.len()) == 0
    {
        return false;
    }
    // The lower-cased word as a key, compared with the keys of the words of
    // its first letter and length (a copy, a lower-casing and a byte
    // comparison per candidate cost more).
    let mut buf = [0u8; MAX_SQL_WORD];
    for (slot, &b) in buf.iter_mut().zip(word) {
        *slot = b.to_ascii_lowercase();
    }
    let key = u128::from_le_bytes(buf);
    let mut pending = SQL_WORD_BUCKETS[usize::from(word[0] & 0x1F)][word.len()];
    while pending != 0 {
        if SQL_WORD_KEYS[pending.trailing_zeros() as usize] == key {
            return true;
        }
        pending &= pending - 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sql_hits(text: &str) -> usize {
        let mut hits = Vec::new();
        for level in 1..=3 {
            super::super::sql::detect(text, level, &mut hits);
        }
        hits.len()
    }

    /// The SQL hits with every context folded and with the contexts skipped
    /// as the inspector's fast path skips them, at every level: the same.
    fn same_sql_hits(text: &str) -> bool {
        use super::super::sql::{Contexts, detect, detect_in};
        let bytes = text.as_bytes();
        let bare = sql_possible(bytes, classes(bytes) & !QUOTE);
        let strong = sql_possible(bytes, classes(bytes) & !(QUOTE | SEMI | PAREN));
        (1..=3).all(|level| {
            let (mut all, mut skipped) = (Vec::new(), Vec::new());
            detect(text, level, &mut all);
            detect_in(
                text,
                level,
                &mut skipped,
                Contexts::Prefiltered { bare, strong },
            );
            all == skipped
        })
    }

    /// The word test as it would be with the tokenizer's own functions.
    fn is_sql_word_slow(word: &[u8], after_dot: bool) -> bool {
        use super::super::sql::fingerprint::is_dangerous;
        use super::super::sql::lexer::{Word, classify, kind};
        let (k, w, _) = classify(word);
        matches!(
            k,
            kind::LOGIC | kind::UNION | kind::STATEMENT | kind::CONTROL | kind::CLAUSE
        ) || matches!(w, Word::Order | Word::Group)
            || is_dangerous(word)
            || (after_dot && is_dangerous_qualified_tail(word))
    }

    /// Every word literal of `classify` that the slow test accepts, and every
    /// dangerous name, is in the list (and nothing else is).
    #[test]
    fn the_sql_word_list_covers_the_tokenizer_and_the_names() {
        let source = include_str!("sql/lexer.rs");
        let start = source.find("pub fn classify").expect("classify");
        let end = start + source[start..].find("fn plain_op").expect("plain_op");
        let mut literals = 0;
        let mut rest = &source[start..end];
        while let Some(open) = rest.find("b\"") {
            let after = &rest[open + 2..];
            let close = after.find('"').expect("closing quote");
            let word = &after[..close];
            rest = &after[close + 1..];
            literals += 1;
            if is_sql_word_slow(word.as_bytes(), false) {
                assert!(SQL_WORDS.contains(&word), "{word} missing");
            }
        }
        assert!(literals >= 70, "{literals}");
        for name in super::super::sql::fingerprint::DANGEROUS_NAMES {
            let name = std::str::from_utf8(name).expect("ASCII");
            assert!(SQL_WORDS.contains(&name), "{name} missing");
        }
        for word in SQL_WORDS {
            assert!(word.len() <= MAX_SQL_WORD, "{word}");
            assert!(
                is_sql_word_slow(word.as_bytes(), false),
                "{word} is not a trigger"
            );
            assert!(is_sql_word(word.to_uppercase().as_bytes(), false), "{word}");
        }
    }

    /// The word test before the length table: lower-case and look up.
    /// The lookup as it was before the keys: a lower-cased copy searched in
    /// the needle set.
    fn is_sql_word_needles(word: &[u8], after_dot: bool) -> bool {
        use super::super::xss::Needles;
        static SET: Needles = Needles::new(SQL_WORDS);
        if after_dot && is_dangerous_qualified_tail(word) {
            return true;
        }
        !word.is_empty() && SET.contains(&word.to_ascii_lowercase())
    }

    fn is_sql_word_lookup(word: &[u8], after_dot: bool) -> bool {
        let lower = word.to_ascii_lowercase();
        SQL_WORDS.iter().any(|w| w.as_bytes() == lower.as_slice())
            || (after_dot && is_dangerous_qualified_tail(word))
    }

    proptest! {
        /// The key lookup against the needle set it replaces, on words
        /// near the list (prefixes, suffixes, case changes) and any bytes.
        #[test]
        fn the_key_lookup_agrees_with_the_needle_set(
            j in 0..SQL_WORDS.len(),
            cut in 0usize..3,
            upper in proptest::collection::vec(any::<bool>(), 16),
            extra in "[a-z_]{0,2}",
            bytes in proptest::collection::vec(any::<u8>(), 1..18),
            after_dot: bool,
        ) {
            let base = SQL_WORDS[j].as_bytes();
            let mut word: Vec<u8> = base[..base.len().saturating_sub(cut).max(1)].to_vec();
            word.extend_from_slice(extra.as_bytes());
            for (b, up) in word.iter_mut().zip(&upper) {
                if *up {
                    b.make_ascii_uppercase();
                }
            }
            prop_assert_eq!(is_sql_word(&word, after_dot), is_sql_word_needles(&word, after_dot));
            prop_assert_eq!(is_sql_word(&bytes, after_dot), is_sql_word_needles(&bytes, after_dot));
        }

        #[test]
        fn the_length_table_agrees_with_the_lookup(word in "[a-zA-Z_]{1,20}", after_dot: bool) {
            prop_assert_eq!(is_sql_word(word.as_bytes(), after_dot), is_sql_word_lookup(word.as_bytes(), after_dot));
        }

        /// The gate split in two (`sqli_strong`, then `;`, `(` and `)`)
        /// says what the single `sql_possible(text, mask & !QUOTE)` said.
        #[test]
        fn the_split_sql_gate_agrees_with_the_single_test(
            text in "[a-zA-Z0-9_ ;()'\"#|&/*.-]{0,40}",
            want_sqli: bool,
        ) {
            let bytes = text.as_bytes();
            let mask = classes(bytes);
            let gates = Gates::of(bytes, mask, 1, want_sqli);
            let bare = want_sqli && sql_possible(bytes, mask & !QUOTE);
            prop_assert_eq!(gates.sqli_bare, bare);
            prop_assert_eq!(gates.sqli, bare || (want_sqli && mask & QUOTE != 0));
            prop_assert_eq!(
                gates.sqli_strong,
                want_sqli && sql_possible(bytes, mask & !(QUOTE | SEMI | PAREN))
            );
        }

        #[test]
        fn the_word_list_agrees_with_the_tokenizer(word in "[a-zA-Z_]{1,18}", after_dot: bool) {
            prop_assert_eq!(
                is_sql_word(word.as_bytes(), after_dot),
                is_sql_word_slow(word.as_bytes(), after_dot)
            );
        }

        #[test]
        fn the_pair_search_agrees_with_windows(text in "[-./*|&a\u{80}-\u{ff}]{0,40}", pair in "[-./*|&a]{2}") {
            let pair: [u8; 2] = [pair.as_bytes()[0], pair.as_bytes()[1]];
            prop_assert_eq!(
                has_pair(text.as_bytes(), &pair),
                text.as_bytes().windows(2).any(|w| w == pair)
            );
        }

        /// Bytes at the edges of the word arithmetic (0, 0x7F, 0x80, 0xFF)
        /// and long values, so the eight-at-a-time loop and its tail both run.
        #[test]
        fn the_pair_search_agrees_with_windows_on_any_bytes(
            text in proptest::collection::vec(
                proptest::sample::select(vec![0u8, 1, 0x2D, 0x2E, 0x7E, 0x7F, 0x80, 0x81, 0xAD, 0xFE, 0xFF]),
                0..70,
            ),
            pair in proptest::array::uniform2(
                proptest::sample::select(vec![0u8, 1, 0x2D, 0x2E, 0x7F, 0x80, 0xAD, 0xFF]),
            ),
        ) {
            prop_assert_eq!(has_pair(&text, &pair), text.windows(2).any(|w| w == pair));
        }

        #[test]
        fn the_plain_token_test_agrees_with_the_original(text in "[a-z0-9_.\\- ,@%é]{0,20}") {
            prop_assert_eq!(
                is_plain_token(text.as_bytes(), classes(text.as_bytes())),
                super::super::is_plain_token(text.as_bytes())
            );
        }
    }

    #[test]
    fn shell_words_are_found_in_any_case() {
        for yes in ["x/BIN/sh", "Cmd.exe", "a powershell -c", "%COMSPEC%"] {
            assert!(has_shell_word(yes.as_bytes()), "{yes}");
        }
        for no in [
            "men/clothing",
            "https://shop.example.com/cart?step=2",
            "bi n/",
            "cm d",
        ] {
            assert!(!has_shell_word(no.as_bytes()), "{no}");
        }
    }

    /// Each class bit is set exactly when one of its bytes is there: the
    /// detectors read `classes` instead of looking for those bytes.
    const CLASS_BYTES: &[(u32, &[u8])] = &[
        (QUOTE, b"'\""),
        (SEMI, b";"),
        (PAREN, b"()"),
        (HASH, b"#"),
        (PIPE, b"|"),
        (AMP, b"&"),
        (DASH, b"-"),
        (SLASH, b"/"),
        (BACKSLASH, b"\\"),
        (LT, b"<"),
        (COLON, b":"),
        (EQ, b"="),
        (BACKTICK, b"`"),
        (BRACE, b"{"),
        (DOT, b"."),
        (NEWLINE, b"\n\r"),
        (DOLLAR, b"$"),
        (PERCENT, b"%"),
        (PLUS, b"+"),
        (NUL, b"\0"),
    ];

    proptest! {
        #[test]
        fn class_bits_say_exactly_which_bytes_are_there(
            bytes in proptest::collection::vec(any::<u8>(), 0..40)
        ) {
            let mask = classes(&bytes);
            for &(class, members) in CLASS_BYTES {
                prop_assert_eq!(
                    mask & class != 0,
                    bytes.iter().any(|b| members.contains(b)),
                    "{:?} {:b}", bytes, class
                );
            }
        }
    }

    #[test]
    fn classes_are_or_ed() {
        assert_eq!(classes(b"abc_123"), 0);
        assert_eq!(classes(b"a b,c@d"), OTHER);
        assert_eq!(classes(b"a'b;c"), QUOTE | SEMI);
        assert_eq!(classes("é\0".as_bytes()), HIGH | NUL);
    }

    #[test]
    fn sql_words_are_found_where_the_tokenizer_reads_them() {
        for yes in [
            "1 union select 1",
            "1 OR true",
            "x order by 3",
            "0xfor",
            "1union",
            "a utl_http.request b",
            "pg_sleep",
            "waitfor delay",
            "x.sleep",
        ] {
            assert!(has_sql_word(yes.as_bytes()), "{yes}");
        }
        for no in [
            "Blue T-shirt, size M",
            "door handle",
            "union2",
            "union.x",
            "request a refund",
            "unionä",
            "ordered",
            "_union",
        ] {
            assert!(!has_sql_word(no.as_bytes()), "{no}");
        }
    }

    /// Bytes and words the SQL tokenizer cares about, to build inputs that
    /// come close to the gate from both sides.
    const PIECES: &[&str] = &[
        "1", "0x", "f", "or", "OR", "and", "union", "select", "sleep", "order", "by", " ", "-",
        "--", "/", "*", "|", "&", "#", ".", "_", "a", "é", "'", "\"", ";", "(", ")", "@", "=",
        "request", "utl_http", "e5", "%", "+", "\t", "!", "like", "from", "is", "not", "null", ",",
        "\\", "''", "N", "<", ">", "@@", "in", "div", "b", "version", "()", "( )", "$", "x1", "9",
        "~", "not", "NOT ", "e", "[", "]", "`",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Closed SQL gate: the full detector finds nothing, at any level.
        #[test]
        fn a_closed_sql_gate_means_no_sql_hit(parts in proptest::collection::vec(0..PIECES.len(), 0..12)) {
            let text: String = parts.iter().map(|&i| PIECES[i]).collect();
            if !sql_possible(text.as_bytes(), classes(text.as_bytes())) {
                prop_assert_eq!(sql_hits(&text), 0, "{:?}", text);
            }
        }

        /// Skipping the contexts the prefilter and the cheap tests of
        /// `sql::detect_in` rule out changes no hit (rule, span, order), at
        /// any level.
        #[test]
        fn skipped_sql_contexts_change_no_hit(parts in proptest::collection::vec(0..PIECES.len(), 0..12)) {
            let text: String = parts.iter().map(|&i| PIECES[i]).collect();
            prop_assert!(same_sql_hits(&text), "{:?}", text);
        }

        #[test]
        fn a_closed_sql_gate_means_no_sql_hit_on_any_bytes(text in "[ -~]{0,24}") {
            if !sql_possible(text.as_bytes(), classes(text.as_bytes())) {
                prop_assert_eq!(sql_hits(&text), 0, "{:?}", text);
            }
            prop_assert!(same_sql_hits(&text), "{:?}", text);
        }
    }
}

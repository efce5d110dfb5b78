//! Folding a token stream into a fingerprint: one byte per token after the
//! noise is gone, in the spirit of libinjection.
//!
//! - Comments become whitespace (`UNION/**/SELECT` is `UNION SELECT`), except
//!   a comment that ends the input: cutting the rest of a query off is the
//!   point of `admin'--`.
//! - Multi-word keywords are one token: `UNION ALL`, `ORDER BY`, `GROUP BY`,
//!   `NOT LIKE`, `IS NOT`, `SOUNDS LIKE`, `WAITFOR DELAY`.
//! - Unary operators vanish (`-1`, `!x`, `NOT x` are values), and arithmetic
//!   between values folds into one value (`1+1`, `'a'||'b'` stay `1`, `s`),
//!   so padding with arithmetic cannot push a payload out of a pattern.

use super::lexer::{Lexer, Op, Token, Word, kind};

/// A folded token sequence and where each token came from.
#[derive(Debug, Default)]
pub struct Fingerprint {
    /// One kind byte per folded token.
    pub kinds: Vec<u8>,
    /// Byte range of each folded token in the input.
    pub spans: Vec<(usize, usize)>,
    /// Whether the input had a MySQL executable comment (`/*! ... */`).
    pub executable_comment: bool,
    /// A call of a function only attacks use (`SLEEP`, `BENCHMARK`,
    /// `LOAD_FILE`, `XP_CMDSHELL`, ...), with its range.
    pub dangerous_call: Option<(usize, usize)>,
    /// A call with no arguments of a function that reports on the database
    /// (`VERSION()`, `DATABASE()`, `CURRENT_USER()`), with its range.
    pub info_call: Option<(usize, usize)>,
    /// Whether the first token is a string whose quote closed: in a quote
    /// context, whether the value breaks out of the string at all.
    pub breaks_out: bool,
}

impl Fingerprint {
    /// Tokenizes `input` in the given quote context and folds the tokens.
    pub fn of(input: &[u8], quote: Option<u8>) -> Self {
        let mut folder = Folder::default();
        folder.fold(input, quote);
        folder.fp
    }
}

/// The folding state, reusable: [`Folder::fold`] clears it and keeps the
/// vectors' room, so a detector that fingerprints many values allocates once.
#[derive(Debug, Default)]
pub struct Folder {
    fp: Fingerprint,
    /// The words of the folded tokens, for multi-word merges.
    words: Vec<Word>,
    ops: Vec<Op>,
    trailing_comment: Option<(usize, usize)>,
}

impl Folder {
    /// Frees the vectors when they have room for more than `tokens` tokens.
    pub fn release_if_larger_than(&mut self, tokens: usize) {
        if self.fp.kinds.capacity() > tokens {
            *self = Self::default();
        }
    }

    /// Tokenizes `input` in the given quote context and folds the tokens
    /// into the fingerprint it returns.
    pub fn fold(&mut self, input: &[u8], quote: Option<u8>) -> &Fingerprint {
        self.fp.kinds.clear();
        self.fp.spans.clear();
        self.fp.executable_comment = false;
        self.fp.dangerous_call = None;
        self.fp.info_call = None;
        self.fp.breaks_out = false;
        self.words.clear();
        self.ops.clear();
        self.trailing_comment = None;
        let mut lexer = Lexer::new(input, quote);
        let folder = self;
        let mut first = true;
        for token in lexer.by_ref() {
            if first {
                folder.fp.breaks_out = token.kind == kind::STRING && token.closed;
                first = false;
            }
            if matches!(token.kind, kind::FUNCTION | kind::BAREWORD)
                && is_dangerous(&input[token.start..token.end])
            {
                folder
                    .fp
                    .dangerous_call
                    .get_or_insert((token.start, token.end));
            }
            if token.kind == kind::FUNCTION
                && is_info_function(&input[token.start..token.end])
                && empty_call_follows(&input[token.end..])
            {
                folder
                    .fp
                    .info_call
                    .get_or_insert((token.start, token.end + 2));
            }
            folder.push(token, input);
        }
        folder.fp.executable_comment = lexer.saw_executable_comment;
        if let Some(span) = folder.trailing_comment {
            folder.fp.kinds.push(kind::COMMENT);
            folder.fp.spans.push(span);
        }
        &folder.fp
    }
}

fn is_value(k: u8) -> bool {
    matches!(
        k,
        kind::NUMBER | kind::STRING | kind::BAREWORD | kind::VARIABLE
    )
}

impl Folder {
    fn push(&mut self, t: Token, input: &[u8]) {
        if t.kind == kind::COMMENT {
            // A comment of words (`#2 MOM`, `--INFANT -CHILD`) at the end is
            // how text uses `#` and `--`; a bare `--`, `#`, `-- -` or `/*`
            // is how queries are cut off.
            let text = &input[t.start..t.end];
            let letters = text.iter().filter(|b| b.is_ascii_alphabetic()).count();
            self.trailing_comment = (letters < 3).then_some((t.start, t.end));
            return;
        }
        self.trailing_comment = None;
        let last = self.fp.kinds.len().checked_sub(1);
        if let Some(i) = last {
            let (lk, lw) = (self.fp.kinds[i], self.words[i]);
            let merged = match (lk, lw, t.word) {
                (kind::UNION, _, Word::All | Word::Distinct) => {
                    Some((kind::UNION, Word::Plain, Op::None))
                }
                (_, Word::Order | Word::Group, Word::By) => {
                    Some((kind::CLAUSE, Word::Plain, Op::None))
                }
                (kind::CONTROL, _, Word::Delay) => Some((kind::CONTROL, Word::Plain, Op::None)),
                (_, Word::Not, Word::Like | Word::Negatable) | (_, Word::Sounds, Word::Like) => {
                    Some((kind::OPERATOR, Word::Plain, Op::Comparison))
                }
                (_, Word::Is, Word::Not) => Some((kind::OPERATOR, Word::Plain, Op::Comparison)),
                _ => None,
            };
            if let Some((k, w, op)) = merged {
                self.fp.kinds[i] = k;
                self.words[i] = w;
                self.ops[i] = op;
                self.fp.spans[i].1 = t.end;
                return;
            }
            // A unary operator before a value is part of the value.
            let follows_value = is_value(lk) || lk == kind::CLOSE;
            if t.op == Op::Unary && !follows_value && t.word != Word::Not {
                return;
            }
            if t.word == Word::Not && !follows_value {
                return;
            }
            // value (arithmetic) value -> value
            if is_value(t.kind)
                && i >= 1
                && matches!(self.ops[i], Op::Arithmetic | Op::Unary)
                && self.fp.kinds[i] == kind::OPERATOR
                && (is_value(self.fp.kinds[i - 1]) || self.fp.kinds[i - 1] == kind::CLOSE)
            {
                self.fp.kinds.pop();
                self.words.pop();
                self.ops.pop();
                self.fp.spans.pop();
                if let Some(prev) = self.fp.spans.last_mut() {
                    prev.1 = t.end;
                }
                return;
            }
        } else if t.op == Op::Unary || t.word == Word::Not {
            return;
        }
        self.fp.kinds.push(t.kind);
        self.fp.spans.push((t.start, t.end));
        self.words.push(t.word);
        self.ops.push(t.op);
    }
}

/// Whether `rest` starts with `()`, spaces allowed.
fn empty_call_follows(rest: &[u8]) -> bool {
    let mut it = rest.iter().filter(|b| !b.is_ascii_whitespace());
    it.next() == Some(&b'(') && it.next() == Some(&b')')
}

/// Functions that tell an attacker about the database; called with no
/// arguments they have no place in a parameter value.
fn is_info_function(word: &[u8]) -> bool {
    [
        &b"version"[..],
        b"database",
        b"current_user",
        b"user",
        b"system_user",
        b"session_user",
        b"connection_id",
        b"schema",
        b"current_database",
        b"last_insert_id",
        b"row_count",
        b"found_rows",
    ]
    .iter()
    .any(|name| word.eq_ignore_ascii_case(name))
}

/// Schema-qualified functions and procedures that are dangerous by their
/// full name (see [`is_dangerous`]).
const DANGEROUS_QUALIFIED: &[&[u8]] = &[
    b"dbms_pipe.receive_message",
    b"dbms_lock.sleep",
    b"utl_inaddr.get_host_address",
    b"utl_inaddr.get_host_name",
    b"utl_http.request",
    b"dbms_xmlgen.getxml",
    b"ctxsys.drithsx.sn",
];

/// Functions and procedures that are dangerous by their name, or by the
/// last part of a schema-qualified name (`master..xp_cmdshell`).
pub(crate) const DANGEROUS_NAMES: &[&[u8]] = &[
    b"sleep",
    b"pg_sleep",
    b"benchmark",
    b"load_file",
    b"extractvalue",
    b"updatexml",
    b"xp_cmdshell",
    b"xp_dirtree",
    b"xp_regread",
    b"sp_executesql",
    b"sp_oacreate",
    b"sp_makewebtask",
    b"sp_password",
    b"openrowset",
    b"opendatasource",
    b"pg_read_file",
    b"pg_ls_dir",
    b"lo_import",
    b"randomblob",
    b"sys_eval",
    b"sys_exec",
    b"name_const",
    b"outfile",
    b"dumpfile",
];

/// For each byte, bit `n` set when a name of [`DANGEROUS_NAMES`] of length
/// `n` starts with it (in either case): most words are turned down on this
/// alone.
static DANGEROUS_LENGTHS: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut j = 0;
    while j < DANGEROUS_NAMES.len() {
        let w = DANGEROUS_NAMES[j];
        let bit = 1u32 << w.len();
        table[w[0] as usize] |= bit;
        table[w[0].to_ascii_uppercase() as usize] |= bit;
        j += 1;
    }
    table
};

/// Functions (and procedures) with no use in a legitimate parameter value:
/// time delays, out-of-band channels, file access, error-based extraction.
pub(crate) fn is_dangerous(word: &[u8]) -> bool {
    if word.len() > 31 {
        return false;
    }
    // A word without a dot can only be one of the names.
    if !word.contains(&b'.')
        && word
            .first()
            .is_none_or(|&b| DANGEROUS_LENGTHS[usize::from(b)] & (1 << word.len()) == 0)
    {
        return false;
    }
    let mut buf = [0u8; 32];
    let lower = &mut buf[..word.len()];
    lower.copy_from_slice(word);
    lower.make_ascii_lowercase();
    // Schema-qualified names: match on the last part too (`master..xp_cmdshell`).
    let last = lower.rsplit(|&b| b == b'.').next().unwrap_or(lower);
    DANGEROUS_QUALIFIED.contains(&&*lower) || DANGEROUS_NAMES.contains(&last)
}

/// Whether `part` (any case) is the last part of a schema-qualified name
/// [`is_dangerous`] knows, such as `request` of `utl_http.request`: the
/// prefilter's test for the dotted names, whose last part alone is not
/// dangerous.
pub(crate) fn is_dangerous_qualified_tail(part: &[u8]) -> bool {
    DANGEROUS_QUALIFIED.iter().any(|name| {
        name.len() > part.len()
            && name[name.len() - part.len() - 1] == b'.'
            && name[name.len() - part.len()..].eq_ignore_ascii_case(part)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(s: &str, quote: Option<u8>) -> String {
        String::from_utf8_lossy(&Fingerprint::of(s.as_bytes(), quote).kinds).into_owned()
    }

    #[test]
    fn folds_comments_unary_and_arithmetic() {
        assert_eq!(fp("1/**/union/**/all/**/select", None), "1UE");
        assert_eq!(fp("-1+2*3 or not 4", None), "1&1");
        assert_eq!(fp("admin'--", Some(b'\'')), "sc");
        assert_eq!(fp("1 order by 3#", None), "1B1c");
        assert_eq!(fp("1 and 2 not like 3", None), "1&1o1");
        assert_eq!(fp("waitfor delay '0:0:5'", None), "Ts");
    }

    /// `is_dangerous` before the length table.
    fn is_dangerous_slow(word: &[u8]) -> bool {
        if word.len() > 32 {
            return false;
        }
        let lower = word.to_ascii_lowercase();
        let last = lower.rsplit(|&b| b == b'.').next().unwrap_or(&lower);
        DANGEROUS_QUALIFIED.contains(&&*lower) || DANGEROUS_NAMES.contains(&last)
    }

    proptest::proptest! {
        #[test]
        fn the_length_table_changes_no_answer(word in "[a-zA-Z_.]{0,34}") {
            proptest::prop_assert_eq!(is_dangerous(word.as_bytes()), is_dangerous_slow(word.as_bytes()));
        }
    }

    #[test]
    fn every_dangerous_name_in_any_case_is_dangerous() {
        for name in DANGEROUS_NAMES.iter().chain(DANGEROUS_QUALIFIED) {
            assert!(is_dangerous(name), "{name:?}");
            assert!(is_dangerous(&name.to_ascii_uppercase()), "{name:?}");
            assert_eq!(is_dangerous(name), is_dangerous_slow(name));
        }
        let long = [b'a'; 32];
        assert_eq!(is_dangerous(&long), is_dangerous_slow(&long));
    }

    #[test]
    fn finds_dangerous_calls_and_breakouts() {
        let f = Fingerprint::of(b"1 and SLEEP(5)", None);
        assert_eq!(f.dangerous_call, Some((6, 11)));
        assert!(Fingerprint::of(b"x' or 1=1", Some(b'\'')).breaks_out);
        assert!(!Fingerprint::of(b"no quote here", Some(b'\'')).breaks_out);
        assert!(
            Fingerprint::of(b"exec master..xp_cmdshell 'dir'", None)
                .dangerous_call
                .is_some()
        );
    }
}

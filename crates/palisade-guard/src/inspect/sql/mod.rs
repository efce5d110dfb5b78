//! SQL injection: a real tokenizer ([`lexer`]), folding into fingerprints
//! ([`fingerprint`]), and a set of fingerprint patterns, each one a shape of
//! query that a parameter value only takes when it changes the query's
//! structure.
//!
//! # The pattern set, and why each shape is there
//!
//! Token kinds: `s` string, `1` number, `n` word, `v` variable, `f` function
//! call, `k` keyword, `U` UNION, `E` statement (SELECT, DROP, ...), `B`
//! clause (ORDER BY, GROUP BY, HAVING, LIMIT), `T` WAITFOR, `&` AND/OR,
//! `o` operator, `c` trailing comment, and `( ) , ;`. In a pattern, `V` is any
//! value (`1 s n v`), `L` a literal (`1 s v`), `P` one or more `)`, `Q` zero
//! or more `)`, `X` any token, `[..]` a class, `^` and `$` anchor at the
//! ends, and `?` makes the token before it optional.
//!
//! A value spliced into a query changes its structure only by leaving its
//! slot: closing the string it sits in (quote contexts) or ending the
//! number or identifier (bare context), and then continuing with structure:
//! a boolean operator, a statement, a clause, a comment that cuts the rest
//! off, a union. The anchored patterns say exactly that: *breakout, then
//! structure*. Ordinary text does not start with a closed string followed by
//! `AND`/`OR` and an operand, nor with a number followed by `OR 1=1`.
//!
//! Some shapes are attacks wherever they appear, because no text has them:
//! `UNION [ALL] SELECT`, a sub-select `(SELECT @@x`, `WAITFOR DELAY '..'`,
//! `SELECT * FROM`, a MySQL executable comment `/*!`, and calls of functions
//! that only attacks use (`SLEEP`, `BENCHMARK`, `XP_CMDSHELL`, ...).
//!
//! Levels: level 1 keeps the shapes that are unambiguous. Level 2 adds
//! shorter shapes (a breakout followed by any `AND`/`OR`, any stacked
//! statement, a string compared with a string). Level 3 adds bare probes
//! (`1--`, a value ending in a quote and a comment) that also occur in
//! benign data.

pub mod fingerprint;
pub mod lexer;

use super::{Category, Hit, Severity};
use fingerprint::Folder;
use std::cell::RefCell;
use std::sync::LazyLock;

/// Where a pattern applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Only in the quote contexts (the value closes a string).
    Quoted,
    /// Only in the bare context (a number or identifier slot).
    Bare,
    /// In every context.
    Any,
}

/// `(rule, level, severity, context, pattern)`.
type Spec = (&'static str, u8, Severity, Context, &'static str);

const CRIT: Severity = Severity::Critical;
const ERR: Severity = Severity::Error;

/// The fingerprint set. See the module documentation for the notation.
const PATTERNS: &[Spec] = &[
    // Closing the string, then AND/OR and an operand that goes on: `' OR 1=1`,
    // `' AND SLEEP(5)`, `' OR 'a'='a`, `' OR 1--`.
    (
        "sqli.breakout-boolean",
        1,
        CRIT,
        Context::Quoted,
        "^sQ&[Lnv][o,)c;k&B]",
    ),
    (
        "sqli.breakout-boolean",
        1,
        CRIT,
        Context::Quoted,
        "^sQ&[f(E]",
    ),
    ("sqli.breakout-boolean", 2, CRIT, Context::Quoted, "^sQ&"),
    // Closing the string, then a comment cutting the query off: `admin'--`.
    ("sqli.breakout-comment", 1, CRIT, Context::Quoted, "^sQ;?c$"),
    // Closing the string, then another statement, clause or call.
    ("sqli.breakout-stacked", 1, CRIT, Context::Quoted, "^sQ;X"),
    ("sqli.breakout-stacked", 2, CRIT, Context::Quoted, "^sQ;"),
    ("sqli.breakout-union", 2, CRIT, Context::Quoted, "^sQU"),
    ("sqli.breakout-clause", 1, CRIT, Context::Quoted, "^sQ[BT]"),
    ("sqli.breakout-clause", 1, CRIT, Context::Quoted, "^sQknB"),
    // Closing the string, then an operator and a call or sub-select: `'||(SELECT`,
    // `'+SLEEP(5)+'`, or a comparison with another string: `a' LIKE 'b`.
    (
        "sqli.breakout-operator",
        1,
        CRIT,
        Context::Quoted,
        "^sQo[f(E]",
    ),
    ("sqli.breakout-operator", 1, CRIT, Context::Quoted, "^sQ(E"),
    (
        "sqli.breakout-operator",
        1,
        CRIT,
        Context::Quoted,
        "^sQo[Ln]",
    ),
    (
        "sqli.breakout-operator",
        3,
        ERR,
        Context::Quoted,
        "^sQ[o,k]",
    ),
    // Ending a number, then AND/OR and a comparison or call: `1 OR 1=1`, `1) AND SLEEP(5)`.
    (
        "sqli.numeric-boolean",
        1,
        CRIT,
        Context::Bare,
        "^[1v]Q&[Lnv]o",
    ),
    (
        "sqli.numeric-boolean",
        1,
        CRIT,
        Context::Bare,
        "^[1vn]Q&[f(E]",
    ),
    ("sqli.numeric-boolean", 2, CRIT, Context::Bare, "^nQ&Lo"),
    ("sqli.numeric-boolean", 2, CRIT, Context::Bare, "^[1v]Q&"),
    // A value that starts with AND/OR and a comparison: appended to a condition.
    ("sqli.appended-boolean", 1, CRIT, Context::Bare, "^&[Lnv]o"),
    ("sqli.appended-boolean", 1, CRIT, Context::Bare, "^&[f(E]"),
    (
        "sqli.numeric-stacked",
        1,
        CRIT,
        Context::Bare,
        "^[1nv]Q;E[kfo(1v;c]",
    ),
    (
        "sqli.numeric-stacked",
        1,
        CRIT,
        Context::Bare,
        "^[1nv]Q;Enk",
    ),
    ("sqli.numeric-stacked", 1, CRIT, Context::Bare, "^[1nv]Q;E$"),
    (
        "sqli.numeric-stacked",
        1,
        CRIT,
        Context::Bare,
        "^[1nv]Q;[TUf]",
    ),
    ("sqli.numeric-stacked", 2, CRIT, Context::Bare, "^[1nv]Q;E"),
    ("sqli.numeric-clause", 1, CRIT, Context::Bare, "^[1n]?QB1"),
    ("sqli.numeric-clause", 1, CRIT, Context::Bare, "^[1n]QknB"),
    ("sqli.numeric-clause", 2, CRIT, Context::Bare, "^[1n]QB"),
    ("sqli.numeric-operator", 1, CRIT, Context::Bare, "^1Qo(E"),
    ("sqli.numeric-operator", 1, CRIT, Context::Bare, "^1Qof("),
    ("sqli.numeric-comment", 2, ERR, Context::Bare, "^1P;?c$"),
    ("sqli.numeric-comment", 3, ERR, Context::Bare, "^1;?c$"),
    // Anywhere: shapes no text has.
    ("sqli.union-select", 1, CRIT, Context::Any, "U(?E"),
    ("sqli.union-select", 1, CRIT, Context::Any, "U((E"),
    ("sqli.subquery", 1, CRIT, Context::Any, "(E[1svfo(]"),
    ("sqli.subquery", 2, CRIT, Context::Any, "(E"),
    ("sqli.condition", 1, CRIT, Context::Any, "B[1v]o[1v]"),
    (
        "sqli.condition",
        1,
        CRIT,
        Context::Any,
        "B[Lnv]o[Lnv][&;)c]",
    ),
    ("sqli.condition", 2, ERR, Context::Any, "B[Lnv]o"),
    ("sqli.time-delay", 1, CRIT, Context::Any, "T[s1]"),
    ("sqli.stacked", 1, CRIT, Context::Any, ";E[ok]"),
    ("sqli.stacked", 1, CRIT, Context::Any, ";T"),
    ("sqli.stacked", 2, CRIT, Context::Any, ";E"),
    ("sqli.select", 1, CRIT, Context::Any, "E[fv]"),
    ("sqli.select", 1, CRIT, Context::Any, "Eok"),
    ("sqli.select", 2, ERR, Context::Any, "E[Vo]k"),
    ("sqli.select", 2, ERR, Context::Any, "E[1s],"),
    ("sqli.tautology", 2, ERR, Context::Any, "&[1s]o[1s]"),
];

/// Token kinds of which every pattern outside the quote contexts needs one
/// (checked by a test on the compiled patterns): the prefilter
/// ([`super::prefilter`]) skips the tokenizer on values that cannot yield
/// any of them and have no quote.
#[cfg(test)]
const TRIGGER_KINDS: &[u8] = b"&;BTUE()c";

/// One element of a compiled pattern.
#[derive(Debug, Clone)]
enum Elem {
    /// Exactly this kind.
    Kind(u8),
    /// Any of these kinds.
    Class(Vec<u8>),
    /// Zero or one of these kinds.
    Optional(Vec<u8>),
    /// Any one token.
    Any,
    /// One or more `)`.
    Closes,
    /// Zero or more `)`.
    MaybeCloses,
}

#[derive(Debug)]
struct Pattern {
    rule: &'static str,
    level: u8,
    severity: Severity,
    context: Context,
    anchored: bool,
    to_end: bool,
    elems: Vec<Elem>,
    /// The kinds every match contains, as a bit set (see [`kind_bit`]): a
    /// fingerprint lacking one of them cannot match, so the pattern is skipped.
    required: u64,
}

/// A bit per token kind, for quick "does this fingerprint have X" tests.
fn kind_bit(k: u8) -> u64 {
    1u64 << (k % 64)
}

static COMPILED: LazyLock<Vec<Pattern>> = LazyLock::new(|| PATTERNS.iter().map(compile).collect());

fn compile(&(rule, level, severity, context, text): &Spec) -> Pattern {
    let mut bytes = text.as_bytes();
    let anchored = bytes.first() == Some(&b'^');
    if anchored {
        bytes = &bytes[1..];
    }
    let to_end = bytes.last() == Some(&b'$');
    if to_end {
        bytes = &bytes[..bytes.len() - 1];
    }
    let mut elems = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let elem = match b {
            b'[' => {
                let mut class = Vec::new();
                i += 1;
                while i < bytes.len() && bytes[i] != b']' {
                    class.extend(expand(bytes[i]));
                    i += 1;
                }
                Elem::Class(class)
            }
            b'P' => Elem::Closes,
            b'X' => Elem::Any,
            b'Q' => Elem::MaybeCloses,
            b'V' | b'L' => Elem::Class(expand(b)),
            _ => Elem::Kind(b),
        };
        let elem = if bytes.get(i + 1) == Some(&b'?') {
            i += 1;
            match elem {
                Elem::Kind(k) => Elem::Optional(vec![k]),
                Elem::Class(c) => Elem::Optional(c),
                other => other,
            }
        } else {
            elem
        };
        elems.push(elem);
        i += 1;
    }
    let required = elems
        .iter()
        .map(|e| match e {
            Elem::Kind(k) => kind_bit(*k),
            // A class requires its kind only when it has one member.
            Elem::Class(c) if c.len() == 1 => kind_bit(c[0]),
            Elem::Closes => kind_bit(b')'),
            _ => 0,
        })
        .fold(0, |a, b| a | b);
    Pattern {
        rule,
        level,
        severity,
        context,
        anchored,
        to_end,
        elems,
        required,
    }
}

fn expand(b: u8) -> Vec<u8> {
    match b {
        b'V' => b"1snv".to_vec(),
        b'L' => b"1sv".to_vec(),
        other => vec![other],
    }
}

/// The end of a match of `elems` on `kinds` starting at `at`.
fn match_at(kinds: &[u8], at: usize, elems: &[Elem]) -> Option<usize> {
    let mut p = at;
    for elem in elems {
        match elem {
            Elem::Kind(k) => {
                if kinds.get(p) != Some(k) {
                    return None;
                }
                p += 1;
            }
            Elem::Class(class) => {
                if !kinds.get(p).is_some_and(|k| class.contains(k)) {
                    return None;
                }
                p += 1;
            }
            Elem::Any => {
                if p >= kinds.len() {
                    return None;
                }
                p += 1;
            }
            Elem::Optional(class) => {
                if kinds.get(p).is_some_and(|k| class.contains(k)) {
                    p += 1;
                }
            }
            Elem::Closes | Elem::MaybeCloses => {
                let start = p;
                while kinds.get(p) == Some(&b')') {
                    p += 1;
                }
                if matches!(elem, Elem::Closes) && p == start {
                    return None;
                }
            }
        }
    }
    Some(p)
}

fn first_match(pattern: &Pattern, kinds: &[u8]) -> Option<(usize, usize)> {
    let starts = if pattern.anchored {
        0..1.min(kinds.len())
    } else {
        0..kinds.len()
    };
    for at in starts {
        if let Some(end) = match_at(kinds, at, &pattern.elems)
            && (!pattern.to_end || end == kinds.len())
        {
            return Some((at, end));
        }
    }
    None
}

/// Bytes that can take part in SQL structure. A value made only of letters,
/// digits, `_` and `.` is one token and cannot change a query's structure.
fn may_be_sql(text: &[u8]) -> bool {
    text.iter()
        .any(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b >= 0x80))
}

/// The kinds that only keywords, `||`, `&&` and comments make: none of them
/// occurs when the prefilter's only SQL triggers are `;`, `(` and `)`.
#[cfg(test)]
const STRONG_KINDS: &[u8] = b"&UETBc";

/// Whether something could match `bytes` in the unquoted context, the
/// prefilter's SQL gate being open. When its only triggers are `;`, `(`
/// and `)` (no keyword, `#`, `--`, `/*`, `||` or `&&`), there is no token
/// of [`STRONG_KINDS`], no dangerous call and no executable comment, and
/// what is left needs a function call `f` (a test checks the patterns):
/// `^[1nv]Q;[TUf]` with a `;`, `^1Qof(` with a number first, and an info
/// call with an empty argument list.
///
/// `strong` is `sql_possible(bytes, classes(bytes) & !(QUOTE | SEMI | PAREN))`,
/// which the prefilter's gate already computed
/// ([`super::prefilter::Gates::sqli_strong`]).
fn unquoted_possible(bytes: &[u8], strong: bool) -> bool {
    if strong {
        return true;
    }
    has_call_shape(bytes)
        && (bytes.contains(&b';') || has_empty_call(bytes) || starts_with_number(bytes))
}

/// Whether a word may be followed by `(` (spaces and tabs between): the
/// run of word bytes, `.` and `$` before it has a byte that is not a digit
/// or `.`, as a word token (not a number) starts with one.
fn has_call_shape(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(p, &b)| {
        if b != b'(' {
            return false;
        }
        let before = &bytes[..p];
        let end = before
            .iter()
            .rposition(|&c| c != b' ' && c != b'\t')
            .map_or(0, |e| e + 1);
        before[..end]
            .iter()
            .rev()
            .take_while(|&&c| lexer::is_word_byte(c) || c == b'.' || c == b'$')
            .any(|&c| !(c.is_ascii_digit() || c == b'.'))
    })
}

/// `(` then `)`, with only ASCII whitespace between (as an info call's).
fn has_empty_call(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(p, &b)| {
        b == b'('
            && bytes[p + 1..]
                .iter()
                .find(|c| !c.is_ascii_whitespace())
                .is_some_and(|&c| c == b')')
    })
}

/// Whether the first folded token is a number: the first token that is not
/// a unary operator or `NOT` (folding drops those at the start, and no merge
/// changes the first kind).
fn starts_with_number(bytes: &[u8]) -> bool {
    lexer::Lexer::new(bytes, None)
        .find(|t| t.op != lexer::Op::Unary && t.word != lexer::Word::Not)
        .is_some_and(|t| t.kind == lexer::kind::NUMBER)
}

/// Whether a pattern of the quote context `q` could match `bytes` when the
/// prefilter found no SQL trigger but the quote (`bare` false): then only the
/// quote-context patterns can match (every other pattern, the dangerous and
/// info calls and the executable comment need a trigger), and each of them
/// is `^sQ` followed by a token that is not a value (checked on the compiled
/// patterns by a test). The first two folded tokens are the first two raw
/// ones when the second is a value (no merge or fold applies after a string),
/// so two tokens decide: a closed string, then a token that is not a value.
fn quoted_breakout_possible(bytes: &[u8], q: u8) -> bool {
    let mut lexer = lexer::Lexer::new(bytes, Some(q));
    let closed_string = lexer
        .next()
        .is_some_and(|t| t.kind == lexer::kind::STRING && t.closed);
    closed_string && lexer.next().is_some_and(|t| !is_value_kind(t.kind))
}

/// The kinds of values and calls: no quote-context pattern has one right
/// after its leading string and closing parentheses.
fn is_value_kind(k: u8) -> bool {
    use lexer::kind::*;
    matches!(k, NUMBER | STRING | BAREWORD | VARIABLE | FUNCTION)
}

/// Looks for SQL injection in `text` with the patterns of levels up to
/// `level`, adding at most one hit per rule. Returns the bytes processed.
pub(crate) fn detect(text: &str, level: u8, hits: &mut Vec<Hit>) -> u64 {
    detect_in(text, level, hits, Contexts::All)
}

/// Which quote contexts [`detect_in`] folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contexts {
    /// Every context whose quote is in the value: the plain detector.
    All,
    /// Only those where a pattern could match, as the prefilter and cheap
    /// tests tell (proptests compare with [`Contexts::All`]). `bare` false is
    /// the prefilter's word for "nothing but a quote could make this SQL"
    /// ([`super::prefilter::Gates::sqli_bare`]); `strong` is
    /// [`super::prefilter::Gates::sqli_strong`].
    Prefiltered { bare: bool, strong: bool },
}

/// [`detect`], skipping the contexts `contexts` rules out; each skipped
/// context would find nothing.
pub(crate) fn detect_in(text: &str, level: u8, hits: &mut Vec<Hit>, contexts: Contexts) -> u64 {
    let bytes = text.as_bytes();
    if !may_be_sql(bytes) {
        return bytes.len() as u64;
    }
    thread_local! {
        /// One folder per thread: its vectors keep their room between values.
        static FOLDER: RefCell<Folder> = RefCell::new(Folder::default());
    }
    FOLDER.with_borrow_mut(|folder| {
        let work = detect_with(bytes, level, hits, folder, contexts);
        // A huge value (a whole body) leaves no huge buffers behind.
        folder.release_if_larger_than(4096);
        work
    })
}

fn detect_with(
    bytes: &[u8],
    level: u8,
    hits: &mut Vec<Hit>,
    folder: &mut Folder,
    contexts: Contexts,
) -> u64 {
    let (prefiltered, bare, strong) = match contexts {
        Contexts::All => (false, true, true),
        Contexts::Prefiltered { bare, strong } => (true, bare, strong),
    };
    let mut work = 0;
    for quote in [None, Some(b'\''), Some(b'"')] {
        match quote {
            None if !bare => continue,
            None if prefiltered && !unquoted_possible(bytes, strong) => continue,
            Some(q) if !bytes.contains(&q) => continue,
            Some(q) if !bare && !quoted_breakout_possible(bytes, q) => continue,
            _ => {}
        }
        work += bytes.len() as u64;
        let fp = folder.fold(bytes, quote);
        let mut add = |rule: &'static str, severity, span: (usize, usize)| {
            if !hits.iter().any(|h| h.rule == rule) {
                hits.push(Hit::new(Category::Sqli, rule, severity, span));
            }
        };
        if let Some(span) = fp.dangerous_call {
            add("sqli.dangerous-function", CRIT, span);
        }
        if let Some(span) = fp.info_call {
            add("sqli.info-function", CRIT, span);
        }
        if fp.executable_comment {
            add("sqli.executable-comment", CRIT, (0, bytes.len()));
        }
        let present = fp.kinds.iter().fold(0u64, |a, &k| a | kind_bit(k));
        for pattern in COMPILED.iter() {
            if pattern.level > level || pattern.required & !present != 0 {
                continue;
            }
            let applies = match pattern.context {
                Context::Any => true,
                Context::Bare => quote.is_none(),
                Context::Quoted => quote.is_some() && fp.breaks_out,
            };
            if !applies {
                continue;
            }
            if let Some((from, to)) = first_match(pattern, &fp.kinds) {
                let span = (fp.spans[from].0, fp.spans[to.max(from + 1) - 1].1);
                add(pattern.rule, pattern.severity, span);
            }
        }
    }
    work
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str, level: u8) -> Vec<&'static str> {
        let mut hits = Vec::new();
        detect(text, level, &mut hits);
        hits.into_iter().map(|h| h.rule).collect()
    }

    #[test]
    fn finds_the_classic_injections_at_level_one() {
        for attack in [
            "1' OR '1'='1",
            "admin'--",
            "1 or 1=1",
            "-1 UNION ALL SELECT null,@@version--",
            "1; DROP TABLE users",
            "1) AND SLEEP(5)#",
            "'; WAITFOR DELAY '0:0:5'--",
            "x' AND 1=(SELECT COUNT(*) FROM users)--",
            "1/*!50000union*//*!50000select*/1,2",
        ] {
            assert!(!rules(attack, 1).is_empty(), "{attack}");
        }
    }

    #[test]
    fn leaves_text_with_quotes_and_sql_words_alone() {
        for text in [
            "O'Neil and Sons",
            "Tom's or Jerry's",
            "rock 'n' roll",
            "O'connors UNION selected a few friends",
            "Please select one from the list",
            "size: 10 or 12",
            "\"quoted\" search terms",
            "1-2 business days",
        ] {
            assert_eq!(rules(text, 1), Vec::<&str>::new(), "{text}");
        }
    }

    /// The prefilter's soundness rests on this: a pattern that applies
    /// outside the quote contexts needs a trigger kind.
    #[test]
    fn every_pattern_outside_quotes_needs_a_trigger_kind() {
        for p in COMPILED.iter().filter(|p| p.context != Context::Quoted) {
            let needs = p.elems.iter().any(|e| match e {
                Elem::Kind(k) => TRIGGER_KINDS.contains(k),
                Elem::Class(c) => c.iter().all(|k| TRIGGER_KINDS.contains(k)),
                Elem::Closes => true,
                _ => false,
            });
            assert!(needs, "{} at level {}", p.rule, p.level);
        }
    }

    /// [`unquoted_possible`] rests on this: every pattern outside the quote
    /// contexts needs a token of [`STRONG_KINDS`], or else a function call
    /// and either a `;` or a number first.
    #[test]
    fn every_unquoted_pattern_needs_a_strong_kind_or_a_call() {
        let classes = |p: &Pattern| -> Vec<Vec<u8>> {
            p.elems
                .iter()
                .filter_map(|e| match e {
                    Elem::Kind(k) => Some(vec![*k]),
                    Elem::Class(c) => Some(c.clone()),
                    Elem::Closes => Some(vec![b')']),
                    _ => None,
                })
                .collect()
        };
        for p in COMPILED.iter().filter(|p| p.context != Context::Quoted) {
            let required = classes(p);
            let within = |set: &[u8]| required.iter().any(|c| c.iter().all(|k| set.contains(k)));
            let strong = within(STRONG_KINDS);
            let mut strong_or_call = STRONG_KINDS.to_vec();
            strong_or_call.push(b'f');
            let call = within(&strong_or_call);
            let semicolon = within(b";");
            let number_first = p.anchored && matches!(p.elems.first(), Some(Elem::Kind(b'1')));
            assert!(
                strong || (call && (semicolon || number_first)),
                "{} at level {}",
                p.rule,
                p.level
            );
        }
    }

    /// [`quoted_breakout_possible`] rests on this: every quote-context
    /// pattern is `^sQ`, then optional tokens and one required token, none of
    /// them a value.
    #[test]
    fn every_quoted_pattern_needs_a_non_value_after_the_string() {
        let no_value = |class: &[u8]| class.iter().all(|&k| !is_value_kind(k));
        for p in COMPILED.iter().filter(|p| p.context == Context::Quoted) {
            let what = format!("{} at level {}", p.rule, p.level);
            assert!(p.anchored, "{what}");
            assert!(matches!(p.elems[0], Elem::Kind(b's')), "{what}");
            assert!(matches!(p.elems[1], Elem::MaybeCloses), "{what}");
            let mut rest = p.elems[2..].iter();
            let required = loop {
                match rest.next() {
                    Some(Elem::Optional(class)) => assert!(no_value(class), "{what}"),
                    other => break other,
                }
            };
            match required {
                Some(Elem::Kind(k)) => assert!(!is_value_kind(*k), "{what}"),
                Some(Elem::Class(class)) => assert!(no_value(class), "{what}"),
                Some(Elem::Closes) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn comments_and_case_do_not_hide_keywords() {
        assert!(rules("1 UnIoN/**/SeLeCt 1,2", 1).contains(&"sqli.union-select"));
        assert!(rules("1'/**/oR/**/'a'='a", 1).contains(&"sqli.breakout-boolean"));
    }
}

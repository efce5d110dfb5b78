//! A SQL tokenizer for the dialects an injected value meets (MySQL,
//! PostgreSQL, SQL Server, Oracle, SQLite): strings with both escaping
//! styles, `--`, `#` and `/* */` comments, MySQL's executable `/*! */`
//! comments, numbers in every notation, variables, operators, and words
//! classified by a keyword table. Lenient by design: any byte sequence
//! tokenizes, in one pass, without backtracking.
//!
//! A value is tokenized three times: as is (a number or an identifier
//! spliced into a query), and as if it started inside a `'...'` or `"..."`
//! string (text spliced between quotes). In a quote context the first token
//! is the rest of that string, so `x' OR 1=1` reads `s & 1 o 1`.

/// Token kinds, one ASCII byte each so a token sequence is a short string.
pub mod kind {
    /// A string literal (or the rest of one, in a quote context).
    pub const STRING: u8 = b's';
    /// A number, or `NULL`, `TRUE`, `FALSE`.
    pub const NUMBER: u8 = b'1';
    /// An identifier or any word that is not a keyword.
    pub const BAREWORD: u8 = b'n';
    /// `@var`, `@@version`.
    pub const VARIABLE: u8 = b'v';
    /// A function call: a word followed by `(`.
    pub const FUNCTION: u8 = b'f';
    /// A keyword with no role of its own in the patterns (`FROM`, `WHERE`, `IN`).
    pub const KEYWORD: u8 = b'k';
    /// `UNION`, `INTERSECT`, `EXCEPT`.
    pub const UNION: u8 = b'U';
    /// A statement: `SELECT`, `INSERT`, `DROP`, `EXEC`, ...
    pub const STATEMENT: u8 = b'E';
    /// `WHERE`, `ORDER BY`, `GROUP BY`, `HAVING`, `LIMIT`: clauses.
    pub const CLAUSE: u8 = b'B';
    /// `WAITFOR` and other control statements of T-SQL.
    pub const CONTROL: u8 = b'T';
    /// `AND`, `OR`, `XOR`, `&&`, `||`.
    pub const LOGIC: u8 = b'&';
    /// Arithmetic and comparison operators, `LIKE`, `IS`, `NOT`, ...
    pub const OPERATOR: u8 = b'o';
    /// `(`.
    pub const OPEN: u8 = b'(';
    /// `)`.
    pub const CLOSE: u8 = b')';
    /// `,`.
    pub const COMMA: u8 = b',';
    /// `;`.
    pub const SEMICOLON: u8 = b';';
    /// A comment.
    pub const COMMENT: u8 = b'c';
    /// Anything else.
    pub const OTHER: u8 = b'?';
}

/// Words the folding step needs to recognise beyond their kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    /// Not a special word.
    Plain,
    /// `ALL`
    All,
    /// `DISTINCT`
    Distinct,
    /// `ORDER`
    Order,
    /// `GROUP`
    Group,
    /// `BY`
    By,
    /// `NOT`
    Not,
    /// `IS`
    Is,
    /// `LIKE`
    Like,
    /// `SOUNDS`
    Sounds,
    /// `DELAY` / `TIME`
    Delay,
    /// `IN`, `BETWEEN`, `REGEXP`, `EXISTS`: operators `NOT` may precede.
    Negatable,
}

/// What an operator does, for folding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Not an operator.
    None,
    /// `+ - * / % & | ^ << >> DIV MOD`: folded between values.
    Arithmetic,
    /// `- + ! ~ NOT`, which may also be unary.
    Unary,
    /// `= < > <= >= <> != <=> LIKE IS ...`
    Comparison,
}

/// One token: its kind, what folding needs, and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// One of [`kind`].
    pub kind: u8,
    /// The special word it is, if any.
    pub word: Word,
    /// The operator class.
    pub op: Op,
    /// Byte range in the input.
    pub start: usize,
    /// End of the byte range.
    pub end: usize,
    /// For a string: whether its closing quote was found.
    pub closed: bool,
}

/// The tokenizer over one input in one quote context.
#[derive(Debug)]
pub struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    /// The quote whose string the input starts inside, until it is consumed.
    open_quote: Option<u8>,
    /// Inside a MySQL `/*! ... */`, whose closing `*/` is skipped.
    in_executable_comment: bool,
    /// Whether a MySQL executable comment was seen.
    pub saw_executable_comment: bool,
}

impl<'a> Lexer<'a> {
    /// A lexer over `s`, starting inside a string quoted by `quote` if any.
    pub fn new(s: &'a [u8], quote: Option<u8>) -> Self {
        Self {
            s,
            pos: 0,
            open_quote: quote,
            in_executable_comment: false,
            saw_executable_comment: false,
        }
    }

    fn peek(&self, offset: usize) -> u8 {
        self.s.get(self.pos + offset).copied().unwrap_or(0)
    }

    fn token(&self, kind: u8, start: usize) -> Token {
        Token {
            kind,
            word: Word::Plain,
            op: Op::None,
            start,
            end: self.pos,
            closed: true,
        }
    }

    fn skip_space(&mut self) {
        while self.pos < self.s.len() {
            let b = self.s[self.pos];
            if b <= b' ' || b == 0x7F {
                self.pos += 1;
            } else if b == 0xC2 && self.peek(1) == 0xA0 {
                self.pos += 2;
            } else if self.in_executable_comment && b == b'*' && self.peek(1) == b'/' {
                self.in_executable_comment = false;
                self.pos += 2;
            } else {
                break;
            }
        }
    }

    /// The string from `start` (after its opening quote) to its closing `q`.
    fn string_body(&mut self, q: u8, start: usize) -> Token {
        while self.pos < self.s.len() {
            let b = self.s[self.pos];
            if b == b'\\' {
                self.pos += 2;
            } else if b == q {
                if self.peek(1) == q {
                    self.pos += 2;
                } else {
                    self.pos += 1;
                    return self.token(kind::STRING, start);
                }
            } else {
                self.pos += 1;
            }
        }
        self.pos = self.s.len();
        let mut t = self.token(kind::STRING, start);
        t.closed = false;
        t
    }

    fn line_comment(&mut self, start: usize) -> Token {
        while self.pos < self.s.len() && self.s[self.pos] != b'\n' {
            self.pos += 1;
        }
        self.token(kind::COMMENT, start)
    }

    fn block_comment(&mut self, start: usize) -> Option<Token> {
        // `/*!` and `/*!50001`: MySQL runs what is inside; so do we.
        if self.peek(2) == b'!' {
            self.pos += 3;
            let mut digits = 0;
            while digits < 6 && self.peek(0).is_ascii_digit() {
                self.pos += 1;
                digits += 1;
            }
            self.in_executable_comment = true;
            self.saw_executable_comment = true;
            return None;
        }
        self.pos += 2;
        while self.pos < self.s.len() {
            if self.s[self.pos] == b'*' && self.peek(1) == b'/' {
                self.pos += 2;
                return Some(self.token(kind::COMMENT, start));
            }
            self.pos += 1;
        }
        Some(self.token(kind::COMMENT, start))
    }

    fn number(&mut self, start: usize) -> Token {
        let s = self.s;
        if s[self.pos] == b'0' && matches!(self.peek(1), b'x' | b'X') {
            self.pos += 2;
            while self.pos < s.len() && s[self.pos].is_ascii_hexdigit() {
                self.pos += 1;
            }
        } else if s[self.pos] == b'0'
            && matches!(self.peek(1), b'b' | b'B')
            && matches!(self.peek(2), b'0' | b'1')
        {
            self.pos += 2;
            while self.pos < s.len() && matches!(s[self.pos], b'0' | b'1') {
                self.pos += 1;
            }
        } else {
            while self.pos < s.len() && s[self.pos].is_ascii_digit() {
                self.pos += 1;
            }
            if self.peek(0) == b'.' {
                self.pos += 1;
                while self.pos < s.len() && s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
            }
            if matches!(self.peek(0), b'e' | b'E')
                && (self.peek(1).is_ascii_digit()
                    || (matches!(self.peek(1), b'+' | b'-') && self.peek(2).is_ascii_digit()))
            {
                self.pos += 2;
                while self.pos < s.len() && s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
            }
        }
        // `1union` is `1 union` to MySQL; `4ever` and `03291016s` are words.
        if self.pos < s.len() && is_word_byte(s[self.pos]) {
            let word_start = self.pos;
            let mut end = word_start;
            while end < s.len() && is_word_byte(s[end]) {
                end += 1;
            }
            let (k, _, _) = classify(&s[word_start..end]);
            if !matches!(
                k,
                kind::UNION | kind::STATEMENT | kind::LOGIC | kind::CLAUSE
            ) {
                self.pos = end;
                return self.token(kind::BAREWORD, start);
            }
        }
        self.token(kind::NUMBER, start)
    }

    fn word(&mut self, start: usize) -> Token {
        let s = self.s;
        // The first byte is a word byte or `$`; take it so the token is never empty.
        self.pos += 1;
        while self.pos < s.len() && (is_word_byte(s[self.pos]) || s[self.pos] == b'.') {
            self.pos += 1;
        }
        // N'...', X'...', B'...', E'...', _utf8'...': string introducers.
        let text = &s[start..self.pos];
        if let Some(&q @ (b'\'' | b'"')) = s.get(self.pos) {
            let introducer = (text.len() == 1
                && matches!(text[0] | 0x20, b'n' | b'x' | b'b' | b'e'))
                || (text.first() == Some(&b'_') && text.len() > 1);
            if introducer {
                self.pos += 1;
                return self.string_body(q, start);
            }
        }
        let (mut k, word, op) = classify(text);
        if matches!(k, kind::BAREWORD) {
            // A word followed by `(` is a function call.
            let mut p = self.pos;
            while p < s.len() && (s[p] == b' ' || s[p] == b'\t') {
                p += 1;
            }
            if s.get(p) == Some(&b'(') {
                k = kind::FUNCTION;
            }
        }
        let mut t = self.token(k, start);
        t.word = word;
        t.op = op;
        t
    }

    fn operator(&mut self, start: usize) -> Token {
        let b = self.s[self.pos];
        let n = self.peek(1);
        let (len, k, op) = match (b, n) {
            (b'<', b'=') if self.peek(2) == b'>' => (3, kind::OPERATOR, Op::Comparison),
            (b'<' | b'>' | b'!', b'=') | (b'<', b'>') => (2, kind::OPERATOR, Op::Comparison),
            (b'<', b'<') | (b'>', b'>') => (2, kind::OPERATOR, Op::Arithmetic),
            (b'|', b'|') | (b'&', b'&') => (2, kind::LOGIC, Op::None),
            (b':', b':') | (b':', b'=') => (2, kind::OPERATOR, Op::Comparison),
            (b'-', b'>') if self.peek(2) == b'>' => (3, kind::OPERATOR, Op::Arithmetic),
            (b'-', b'>') => (2, kind::OPERATOR, Op::Arithmetic),
            (b'=' | b'<' | b'>', _) => (1, kind::OPERATOR, Op::Comparison),
            (b'-' | b'+' | b'!' | b'~', _) => (1, kind::OPERATOR, Op::Unary),
            (b'*' | b'/' | b'%' | b'&' | b'|' | b'^', _) => (1, kind::OPERATOR, Op::Arithmetic),
            (b'(', _) => (1, kind::OPEN, Op::None),
            (b')', _) => (1, kind::CLOSE, Op::None),
            (b',', _) => (1, kind::COMMA, Op::None),
            (b';', _) => (1, kind::SEMICOLON, Op::None),
            (b'.' | b':' | b'?', _) => (1, kind::OPERATOR, Op::None),
            _ => (1, kind::OTHER, Op::None),
        };
        self.pos += len;
        let mut t = self.token(k, start);
        t.op = op;
        t
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let before = self.pos;
        let token = self.next_token();
        crate::inspect::steps::add(self.pos.saturating_sub(before) + 1);
        token
    }
}

impl Lexer<'_> {
    fn next_token(&mut self) -> Option<Token> {
        if let Some(q) = self.open_quote.take() {
            return Some(self.string_body(q, 0));
        }
        loop {
            self.skip_space();
            let start = self.pos;
            let b = *self.s.get(self.pos)?;
            let n = self.peek(1);
            return Some(match b {
                b'\'' | b'"' => {
                    self.pos += 1;
                    self.string_body(b, start)
                }
                b'`' => {
                    self.pos += 1;
                    let mut t = self.string_body(b'`', start);
                    t.kind = kind::BAREWORD;
                    t
                }
                b'[' => {
                    // T-SQL's bracketed identifier, up to `]` or the line end.
                    while self.pos < self.s.len() && !matches!(self.s[self.pos], b']' | b'\n') {
                        self.pos += 1;
                    }
                    self.pos = (self.pos + 1).min(self.s.len());
                    self.token(kind::BAREWORD, start)
                }
                b'-' if n == b'-' => self.line_comment(start),
                b'#' => self.line_comment(start),
                b'/' if n == b'*' => match self.block_comment(start) {
                    Some(t) => t,
                    None => continue,
                },
                b'@' => {
                    self.pos += 1;
                    if self.peek(0) == b'@' {
                        self.pos += 1;
                    }
                    while self.pos < self.s.len()
                        && (is_word_byte(self.s[self.pos]) || self.s[self.pos] == b'.')
                    {
                        self.pos += 1;
                    }
                    self.token(kind::VARIABLE, start)
                }
                b'0'..=b'9' => self.number(start),
                b'.' if n.is_ascii_digit() => self.number(start),
                b if is_word_byte(b) || b == b'$' => self.word(start),
                _ => self.operator(start),
            });
        }
    }
}

pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Kind, special word and operator class of a word.
pub fn classify(word: &[u8]) -> (u8, Word, Op) {
    use kind::*;
    if word.len() > 16 {
        return (BAREWORD, Word::Plain, Op::None);
    }
    let mut buf = [0u8; 16];
    let lower = &mut buf[..word.len()];
    lower.copy_from_slice(word);
    lower.make_ascii_lowercase();
    let plain = |k| (k, Word::Plain, Op::None);
    match &*lower {
        b"union" | b"intersect" | b"except" => plain(UNION),
        b"select" | b"insert" | b"update" | b"delete" | b"drop" | b"create" | b"alter"
        | b"truncate" | b"exec" | b"execute" | b"declare" | b"shutdown" | b"grant" | b"revoke"
        | b"handler" | b"rename" | b"dbcc" | b"bulk" | b"call" => plain(STATEMENT),
        b"waitfor" | b"goto" => plain(CONTROL),
        b"limit" | b"having" | b"procedure" | b"where" => plain(CLAUSE),
        b"and" | b"or" | b"xor" => plain(LOGIC),
        b"null" | b"true" | b"false" | b"unknown" => plain(NUMBER),
        b"not" => (OPERATOR, Word::Not, Op::Unary),
        b"is" => (OPERATOR, Word::Is, Op::Comparison),
        b"like" => (OPERATOR, Word::Like, Op::Comparison),
        b"rlike" | b"ilike" | b"glob" | b"soundex" => plain_op(Op::Comparison),
        b"regexp" | b"between" | b"in" | b"exists" => (OPERATOR, Word::Negatable, Op::Comparison),
        b"sounds" => (OPERATOR, Word::Sounds, Op::Comparison),
        b"div" | b"mod" => plain_op(Op::Arithmetic),
        b"all" => (KEYWORD, Word::All, Op::None),
        b"distinct" => (KEYWORD, Word::Distinct, Op::None),
        b"order" => (KEYWORD, Word::Order, Op::None),
        b"group" => (KEYWORD, Word::Group, Op::None),
        b"by" => (KEYWORD, Word::By, Op::None),
        b"delay" | b"time" => (KEYWORD, Word::Delay, Op::None),
        b"from" | b"as" | b"into" | b"values" | b"set" | b"top" | b"case" | b"when" | b"then"
        | b"else" | b"end" | b"join" | b"on" | b"using" | b"table" | b"database" | b"asc"
        | b"desc" | b"offset" | b"collate" | b"escape" | b"infile" | b"load" | b"begin" => {
            plain(KEYWORD)
        }
        _ => plain(BAREWORD),
    }
}

fn plain_op(op: Op) -> (u8, Word, Op) {
    (kind::OPERATOR, Word::Plain, op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str, quote: Option<u8>) -> String {
        Lexer::new(s.as_bytes(), quote)
            .map(|t| t.kind as char)
            .collect()
    }

    #[test]
    fn tokenizes_the_classic_shapes() {
        assert_eq!(kinds("1 or 1=1", None), "1&1o1");
        assert_eq!(kinds("x' or 'a'='a", Some(b'\'')), "s&sos");
        assert_eq!(kinds("1 union all select @@version--", None), "1UkEvc");
        assert_eq!(kinds("admin'--", Some(b'\'')), "sc");
        assert_eq!(kinds("1;drop table users#", None), "1;Eknc");
        assert_eq!(kinds("sleep (5)", None), "f(1)");
    }

    #[test]
    fn strings_escape_both_ways_and_may_stay_open() {
        let toks: Vec<_> = Lexer::new(br"'it''s \' here' x", None).collect();
        assert_eq!(toks.len(), 2);
        assert!(toks[0].closed);
        let open: Vec<_> = Lexer::new(b"'never closed", None).collect();
        assert!(!open[0].closed);
        assert_eq!(kinds("N'abc' X'41'", None), "ss");
    }

    #[test]
    fn executable_comments_are_code_and_others_are_comments() {
        assert_eq!(kinds("/*!50000union*/ /*!select*/ 1", None), "UE1");
        assert_eq!(kinds("union/**/select", None), "UcE");
        let mut lexer = Lexer::new(b"/*!union*/", None);
        assert!(lexer.next().is_some());
        assert!(lexer.saw_executable_comment);
    }

    #[test]
    fn numbers_glued_to_keywords_split_but_codes_stay_words() {
        assert_eq!(kinds("1union select", None), "1UE");
        assert_eq!(kinds("03291016s", None), "n");
        assert_eq!(kinds("0x41 0b101 1.5e3 .5", None), "1111");
    }

    #[test]
    fn every_byte_sequence_tokenizes_to_the_end() {
        for s in [
            &b"\xff\xfe'\\"[..],
            b"[[[",
            b"/*!",
            b"@@",
            b"--",
            b"'",
            b"0x",
        ] {
            let last = Lexer::new(s, None).last();
            assert!(last.is_none_or(|t| t.end <= s.len()));
        }
    }
}

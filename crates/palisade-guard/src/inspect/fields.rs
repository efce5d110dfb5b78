//! Splitting a request into the values an application reads: query and form
//! pairs, cookies, and JSON bodies field by field, each with its location.
//!
//! The JSON walker is iterative (an explicit stack, no recursion), so a body
//! nested a million levels deep costs a stack of a million bytes on the
//! heap, never a stack overflow; it stops following field paths past the
//! depth limit but keeps inspecting the values.

use std::borrow::Cow;

/// The longest key quoted in a location.
const MAX_KEY_CHARS: usize = 64;

/// A location segment for `key`: control characters shown as `?`, at most
/// [`MAX_KEY_CHARS`] characters.
pub(crate) fn clean_key(key: &str) -> Cow<'_, str> {
    // ASCII: one byte per character, and the only control characters are
    // the ASCII ones.
    if key.len() <= MAX_KEY_CHARS && key.bytes().all(|b| (b' '..0x7f).contains(&b)) {
        return Cow::Borrowed(key);
    }
    if key.chars().count() <= MAX_KEY_CHARS && !key.chars().any(char::is_control) {
        return Cow::Borrowed(key);
    }
    let mut out: String = key
        .chars()
        .take(MAX_KEY_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if key.chars().nth(MAX_KEY_CHARS).is_some() {
        out.push('…');
    }
    Cow::Owned(out)
}

/// `key=value` pairs separated by `&`, raw (still encoded). A pair without
/// `=` is a key with an empty value.
pub(crate) fn pairs(s: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    // `split(|&b| b == b'&')` without the empty parts, with the separators
    // found eight bytes at a time (see the proptest).
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        loop {
            let r = rest?;
            let part = match find_byte(r, b'&') {
                Some(i) => {
                    rest = Some(&r[i + 1..]);
                    &r[..i]
                }
                None => {
                    rest = None;
                    r
                }
            };
            if part.is_empty() {
                continue;
            }
            return Some(match find_byte(part, b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &part[part.len()..]),
            });
        }
    })
}

/// The first position of `needle` in `bytes`: eight bytes at a time, with
/// an exact zero-byte test on the word xor-ed with the needle (the same
/// answer as `iter().position`, see the proptest).
fn find_byte(bytes: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOWS: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let pattern = ONES * u64::from(needle);
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w) ^ pattern;
        // The high bit of each byte of `x` that is zero, exactly (no carry
        // crosses bytes).
        let zeros = !(((x & LOWS) + LOWS) | x | LOWS);
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|p| at + p)
}

/// `name=value` pairs of a `Cookie` header.
pub(crate) fn cookies(s: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    // `split(|&b| b == b';')` with the separators and `=` found eight bytes
    // at a time (see the proptest).
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        loop {
            let r = rest?;
            let part = match find_byte(r, b';') {
                Some(i) => {
                    rest = Some(&r[i + 1..]);
                    &r[..i]
                }
                None => {
                    rest = None;
                    r
                }
            };
            let p = part.trim_ascii();
            if p.is_empty() {
                continue;
            }
            return Some(match find_byte(p, b'=') {
                Some(i) => (p[..i].trim_ascii(), p[i + 1..].trim_ascii()),
                None => (&p[..0], p),
            });
        }
    })
}

/// What walking a JSON body found besides its values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct JsonWalk {
    /// The body is not well-formed JSON (the values before the error were
    /// still visited).
    pub malformed: bool,
    /// Nesting went past the depth limit.
    pub too_deep: bool,
    /// The visitor asked to stop (too many values).
    pub stopped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// An object, with where its current key starts in the body (its `"`).
    Object(usize),
    /// An array, with the index of its current element.
    Array(usize),
}

/// Where a JSON value is: `root.key[3].name`, rendered only when asked
/// ([`JsonPath::render`]), because most values have no finding and need no
/// location. Levels past the depth limit are left out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonPath<'w> {
    root: &'w str,
    body: &'w [u8],
    /// The frames that are shown: at most the depth limit.
    frames: &'w [Frame],
}

impl<'w> JsonPath<'w> {
    fn new(root: &'w str, body: &'w [u8], stack: &'w [Frame], max_depth: usize) -> Self {
        Self {
            root,
            body,
            frames: &stack[..stack.len().min(max_depth)],
        }
    }

    /// The location as text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::from(self.root);
        let mut key = String::new();
        for frame in self.frames {
            match *frame {
                Frame::Object(at) => {
                    // The key was read once already: it is a whole string.
                    let mut p = Parser::new(self.body, None);
                    p.pos = at;
                    if let Some(text) = p.string(&mut key) {
                        out.push('.');
                        out.push_str(&clean_key(text));
                    }
                }
                Frame::Array(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

/// Walks `body` as JSON, calling `visit(location, text, is_key)` for every
/// object key and string value (numbers, booleans and null cannot carry an
/// attack). `visit` returns false to stop.
///
/// The body is checked as UTF-8 once: when it is valid (the usual case),
/// strings without escapes are handed over as slices of it, not copied.
pub(crate) fn walk_json(
    body: &[u8],
    root: &str,
    max_depth: usize,
    mut visit: impl FnMut(JsonPath<'_>, &str, bool) -> bool,
) -> JsonWalk {
    let mut walk = JsonWalk::default();
    let mut p = Parser::new(body, std::str::from_utf8(body).ok());
    let mut stack: Vec<Frame> = Vec::new();
    let mut buf = String::new();
    // Expecting a value (true) or a separator/closer (false).
    let mut want_value = true;
    loop {
        p.skip_ws();
        if want_value {
            let Some(b) = p.peek() else {
                // The end where a value must come: an empty body, or after `[`, `,` or `:`.
                walk.malformed = true;
                return walk;
            };
            match b {
                b'{' | b'[' => {
                    p.pos += 1;
                    let frame = if b == b'{' {
                        Frame::Object(0)
                    } else {
                        Frame::Array(0)
                    };
                    stack.push(frame);
                    if stack.len() > max_depth {
                        walk.too_deep = true;
                    }
                    p.skip_ws();
                    let close = if b == b'{' { b'}' } else { b']' };
                    if p.peek() == Some(close) {
                        p.pos += 1;
                        stack.pop();
                        want_value = false;
                        continue;
                    }
                    if b == b'{' {
                        let Some(key) = read_key(&mut p, &mut buf, &mut stack) else {
                            walk.malformed = true;
                            return walk;
                        };
                        if !visit(JsonPath::new(root, body, &stack, max_depth), key, true) {
                            walk.stopped = true;
                            return walk;
                        }
                    }
                }
                b'"' => {
                    let Some(text) = p.string(&mut buf) else {
                        walk.malformed = true;
                        return walk;
                    };
                    if !visit(JsonPath::new(root, body, &stack, max_depth), text, false) {
                        walk.stopped = true;
                        return walk;
                    }
                    want_value = false;
                }
                _ => {
                    if !p.scalar() {
                        walk.malformed = true;
                        return walk;
                    }
                    want_value = false;
                }
            }
        } else {
            let Some(&frame) = stack.last() else {
                walk.malformed = p.peek().is_some();
                return walk;
            };
            match (p.peek(), frame) {
                (Some(b','), Frame::Object(_)) => {
                    p.pos += 1;
                    let Some(key) = read_key(&mut p, &mut buf, &mut stack) else {
                        walk.malformed = true;
                        return walk;
                    };
                    if !visit(JsonPath::new(root, body, &stack, max_depth), key, true) {
                        walk.stopped = true;
                        return walk;
                    }
                    want_value = true;
                }
                (Some(b','), Frame::Array(i)) => {
                    p.pos += 1;
                    if let Some(top) = stack.last_mut() {
                        *top = Frame::Array(i + 1);
                    }
                    want_value = true;
                }
                (Some(b'}'), Frame::Object(_)) | (Some(b']'), Frame::Array(_)) => {
                    p.pos += 1;
                    stack.pop();
                }
                _ => {
                    walk.malformed = true;
                    return walk;
                }
            }
        }
    }
}

/// Reads `"key" :`, records where the key starts in the top frame and
/// returns its text.
fn read_key<'a: 't, 't>(
    p: &mut Parser<'a>,
    buf: &'t mut String,
    stack: &mut [Frame],
) -> Option<&'t str> {
    p.skip_ws();
    if p.peek() != Some(b'"') {
        return None;
    }
    let at = p.pos;
    let key = p.string(buf)?;
    p.skip_ws();
    if p.peek() != Some(b':') {
        return None;
    }
    p.pos += 1;
    if let Some(top) = stack.last_mut() {
        *top = Frame::Object(at);
    }
    Some(key)
}

/// Appends `bytes` to `buf`, invalid UTF-8 as U+FFFD; valid UTF-8 (the usual
/// case) is checked once and copied.
fn push_lossy(buf: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => buf.push_str(text),
        Err(_) => buf.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// The first `"` or `\\` in `s`, eight bytes at a time: a JSON string's
/// end or first escape.
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each zero byte of `x` (bits above the first zero
    // byte may be set by the borrow; the lowest one is exact).
    let zeros = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let found = zeros(w ^ (ONES * u64::from(b'"'))) | zeros(w ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|p| at + p)
}

struct Parser<'a> {
    s: &'a [u8],
    /// The body as text when it is valid UTF-8.
    text: Option<&'a str>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a [u8], text: Option<&'a str>) -> Self {
        Self { s, text, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// A number, `true`, `false` or `null`, not kept.
    fn scalar(&mut self) -> bool {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let word = &self.s[start..self.pos];
        matches!(word, b"true" | b"false" | b"null")
            || (!word.is_empty() && (word[0] == b'-' || word[0].is_ascii_digit()))
    }

    /// A string at `"`: a slice of the body when it has no escapes and the
    /// body is valid UTF-8, else unescaped into `buf` (invalid UTF-8 and lone
    /// surrogates become U+FFFD). `None` when unterminated.
    fn string<'t>(&mut self, buf: &'t mut String) -> Option<&'t str>
    where
        'a: 't,
    {
        self.pos += 1;
        let start = self.pos;
        let end = start + quote_or_backslash(&self.s[start..])?;
        if let Some(text) = self.text
            && self.s[end] == b'"'
        {
            self.pos = end + 1;
            // `start` and `end` are next to ASCII quotes: character boundaries.
            return text.get(start..end);
        }
        buf.clear();
        let mut raw_start = start;
        self.pos = end;
        loop {
            let b = self.peek()?;
            match b {
                b'"' => {
                    push_lossy(buf, &self.s[raw_start..self.pos]);
                    self.pos += 1;
                    return Some(buf);
                }
                b'\\' => {
                    push_lossy(buf, &self.s[raw_start..self.pos]);
                    let e = self.s.get(self.pos + 1).copied()?;
                    self.pos += 2;
                    let c = match e {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => self.unicode_escape(),
                        other => other as char,
                    };
                    buf.push(c);
                    raw_start = self.pos;
                }
                _ => self.pos += 1,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.pos..self.pos + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
        self.pos += 4;
        Some(v)
    }

    fn unicode_escape(&mut self) -> char {
        let Some(hi) = self.hex4() else {
            return '\u{fffd}';
        };
        if (0xD800..0xDC00).contains(&hi) && self.s.get(self.pos..self.pos + 2) == Some(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            if let Some(lo) = self.hex4().filter(|lo| (0xDC00..0xE000).contains(lo)) {
                let code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return char::from_u32(code).unwrap_or('\u{fffd}');
            }
            self.pos = save;
        }
        char::from_u32(hi).unwrap_or('\u{fffd}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(body: &str, depth: usize) -> (Vec<(String, String, bool)>, JsonWalk) {
        let mut seen = Vec::new();
        let walk = walk_json(body.as_bytes(), "body", depth, |loc, text, key| {
            seen.push((loc.render(), text.to_owned(), key));
            true
        });
        (seen, walk)
    }

    #[test]
    fn visits_keys_and_strings_with_their_paths() {
        let (seen, walk) = collect(
            r#"{"user":{"name":"a\"b","tags":["x",1,{"k":"\u00e9\ud83d\ude00"}]},"n":null}"#,
            64,
        );
        assert_eq!(walk, JsonWalk::default());
        let values: Vec<_> = seen
            .iter()
            .filter(|s| !s.2)
            .map(|s| (s.0.as_str(), s.1.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("body.user.name", "a\"b"),
                ("body.user.tags[0]", "x"),
                ("body.user.tags[2].k", "é😀"),
            ]
        );
        assert!(seen.iter().any(|s| s.2 && s.1 == "tags"));
    }

    #[test]
    fn malformed_json_is_reported_after_the_values_before_the_error() {
        let (seen, walk) = collect(r#"{"a":"x","b":tru"#, 64);
        assert!(walk.malformed);
        assert!(seen.iter().any(|s| s.1 == "x"));
        for bad in ["", "{", "[1,", r#"{"a" 1}"#, "\"open", "{}}", "[1 2]"] {
            assert!(collect(bad, 64).1.malformed, "{bad}");
        }
        for good in ["1", "\"s\"", "[]", "{}", " [ [ ] , { } ] "] {
            assert!(!collect(good, 64).1.malformed, "{good}");
        }
    }

    #[test]
    fn deep_nesting_is_walked_without_recursion() {
        let depth = 200_000;
        let body = format!("{}\"deep\"{}", "[".repeat(depth), "]".repeat(depth));
        let (seen, walk) = collect(&body, 64);
        assert!(walk.too_deep && !walk.malformed);
        assert_eq!(seen.len(), 1);
        assert!(seen[0].0.len() < 64 * 8);
    }

    /// The walker as it was before paths were rendered lazily and strings
    /// borrowed (strings forced through the lossy copy): the reference for
    /// the equivalence test.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum EagerFrame {
        Object,
        Array(usize),
    }

    fn string_eager(p: &mut Parser<'_>, buf: &mut String) -> bool {
        let mut own = String::new();
        match p.string(&mut own) {
            Some(text) => {
                *buf = text.to_owned();
                true
            }
            None => false,
        }
    }

    fn read_key_eager(
        p: &mut Parser<'_>,
        buf: &mut String,
        path: &mut String,
        shown: bool,
    ) -> bool {
        p.skip_ws();
        if p.peek() != Some(b'"') || !string_eager(p, buf) {
            return false;
        }
        p.skip_ws();
        if p.peek() != Some(b':') {
            return false;
        }
        p.pos += 1;
        if shown {
            path.push('.');
            path.push_str(&clean_key(buf));
        }
        true
    }

    fn walk_json_eager(
        body: &[u8],
        root: &str,
        max_depth: usize,
        mut visit: impl FnMut(&str, &str, bool) -> bool,
    ) -> JsonWalk {
        let mut walk = JsonWalk::default();
        let mut p = Parser::new(body, None);
        let mut stack: Vec<EagerFrame> = Vec::new();
        // The location, and its length before each frame's last segment.
        let mut path = String::from(root);
        let mut marks: Vec<usize> = Vec::new();
        let mut buf = String::new();
        // Expecting a value (true) or a separator/closer (false).
        let mut want_value = true;
        loop {
            p.skip_ws();
            if want_value {
                let Some(b) = p.peek() else {
                    // The end where a value must come: an empty body, or after `[`, `,` or `:`.
                    walk.malformed = true;
                    return walk;
                };
                match b {
                    b'{' | b'[' => {
                        p.pos += 1;
                        let frame = if b == b'{' {
                            EagerFrame::Object
                        } else {
                            EagerFrame::Array(0)
                        };
                        stack.push(frame);
                        marks.push(path.len());
                        if stack.len() > max_depth {
                            walk.too_deep = true;
                        }
                        p.skip_ws();
                        let close = if b == b'{' { b'}' } else { b']' };
                        if p.peek() == Some(close) {
                            p.pos += 1;
                            stack.pop();
                            if let Some(m) = marks.pop() {
                                path.truncate(m);
                            }
                            want_value = false;
                            continue;
                        }
                        if b == b'{' {
                            if !read_key_eager(
                                &mut p,
                                &mut buf,
                                &mut path,
                                stack.len() <= max_depth,
                            ) {
                                walk.malformed = true;
                                return walk;
                            }
                            if !visit(&path, &buf, true) {
                                walk.stopped = true;
                                return walk;
                            }
                        } else if stack.len() <= max_depth {
                            path.push_str("[0]");
                        }
                    }
                    b'"' => {
                        if !string_eager(&mut p, &mut buf) {
                            walk.malformed = true;
                            return walk;
                        }
                        if !visit(&path, &buf, false) {
                            walk.stopped = true;
                            return walk;
                        }
                        want_value = false;
                    }
                    _ => {
                        if !p.scalar() {
                            walk.malformed = true;
                            return walk;
                        }
                        want_value = false;
                    }
                }
            } else {
                let shown = stack.len() <= max_depth;
                let Some(frame) = stack.last_mut() else {
                    walk.malformed = p.peek().is_some();
                    return walk;
                };
                let mark = marks.last().copied().unwrap_or(0);
                match (p.peek(), *frame) {
                    (Some(b','), EagerFrame::Object) => {
                        p.pos += 1;
                        path.truncate(mark);
                        if !read_key_eager(&mut p, &mut buf, &mut path, shown) {
                            walk.malformed = true;
                            return walk;
                        }
                        if !visit(&path, &buf, true) {
                            walk.stopped = true;
                            return walk;
                        }
                        want_value = true;
                    }
                    (Some(b','), EagerFrame::Array(i)) => {
                        p.pos += 1;
                        *frame = EagerFrame::Array(i + 1);
                        path.truncate(mark);
                        if shown {
                            path.push('[');
                            path.push_str(&(i + 1).to_string());
                            path.push(']');
                        }
                        want_value = true;
                    }
                    (Some(b'}'), EagerFrame::Object) | (Some(b']'), EagerFrame::Array(_)) => {
                        p.pos += 1;
                        stack.pop();
                        marks.pop();
                        path.truncate(mark);
                    }
                    _ => {
                        walk.malformed = true;
                        return walk;
                    }
                }
            }
        }
    }

    /// JSON pieces: containers, keys with escapes and control characters,
    /// invalid UTF-8, and broken syntax.
    const JSON_PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"k\"",
        "\"a.b\"",
        "\"\\n\\u00e9\"",
        "\"\\\"q\"",
        "\"x\\u0001\"",
        "\"é\"",
        "1",
        "null",
        "true",
        " ",
        "\"",
        "\\",
        "\"long key long key long key long key long key long key long key\"",
    ];

    /// [`pairs`] as it was, with `split` and `position`.
    fn pairs_split(s: &[u8]) -> Vec<(&[u8], &[u8])> {
        s.split(|&b| b == b'&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.iter().position(|&b| b == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &p[p.len()..]),
            })
            .collect()
    }

    /// [`cookies`] as it was, with `split` and `position`.
    fn cookies_split(s: &[u8]) -> Vec<(&[u8], &[u8])> {
        s.split(|&b| b == b';')
            .filter_map(|p| {
                let p = p.trim_ascii();
                if p.is_empty() {
                    return None;
                }
                Some(match p.iter().position(|&b| b == b'=') {
                    Some(i) => (p[..i].trim_ascii(), p[i + 1..].trim_ascii()),
                    None => (&p[..0], p),
                })
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn cookies_agree_with_split(s in "[a;= \t\u{e9}]{0,40}") {
            proptest::prop_assert_eq!(cookies(s.as_bytes()).collect::<Vec<_>>(), cookies_split(s.as_bytes()));
        }

        #[test]
        fn pairs_agree_with_split(s in "[a&=%\u{e9}]{0,40}") {
            proptest::prop_assert_eq!(pairs(s.as_bytes()).collect::<Vec<_>>(), pairs_split(s.as_bytes()));
        }

        #[test]
        fn find_byte_agrees_with_position(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![0u8, 1, 0x26, 0x27, 0x3D, 0x7F, 0x80, 0xA6, 0xBD, 0xFF]),
                0..40,
            ),
            needle in proptest::sample::select(vec![0u8, 0x26, 0x3D, 0x7F, 0x80, 0xFF]),
        ) {
            proptest::prop_assert_eq!(find_byte(&bytes, needle), bytes.iter().position(|&b| b == needle));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The walker visits the same texts at the same locations, and
        /// reports the same problems, as the eager walker it replaced.
        #[test]
        fn lazy_paths_agree_with_the_eager_walker(
            parts in proptest::collection::vec(0..JSON_PIECES.len(), 0..24),
            bad_byte: bool,
            depth in 0..4usize,
        ) {
            let mut body: Vec<u8> = parts.iter().flat_map(|&i| JSON_PIECES[i].bytes()).collect();
            if bad_byte {
                body.insert(body.len() / 2, 0xff);
            }
            let mut lazy = Vec::new();
            let walk = walk_json(&body, "body", depth, |loc, text, key| {
                lazy.push((loc.render(), text.to_owned(), key));
                lazy.len() < 12
            });
            let mut eager = Vec::new();
            let eager_walk = walk_json_eager(&body, "body", depth, |loc, text, key| {
                eager.push((loc.to_owned(), text.to_owned(), key));
                eager.len() < 12
            });
            proptest::prop_assert_eq!(walk, eager_walk);
            proptest::prop_assert_eq!(lazy, eager, "{:?}", String::from_utf8_lossy(&body));
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let text = prop::sample::select(vec!["k", "a.b", "\n\u{1}é", "\"q\\", "", "x y"]);
        let leaf = prop_oneof![
            text.clone()
                .prop_map(|t| serde_json::Value::String(t.to_owned())),
            any::<i32>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ];
        leaf.prop_recursive(5, 40, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::vec((text.clone(), inner), 0..4).prop_map(|pairs| {
                    serde_json::Value::Object(
                        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    )
                }),
            ]
        })
    }

    proptest::proptest! {
        /// Well-formed bodies, nested past the depth limit: the same
        /// locations and texts as the eager walker.
        #[test]
        fn lazy_paths_agree_with_the_eager_walker_on_nested_bodies(
            value in json_value(),
            depth in 0..5usize,
        ) {
            let body = value.to_string();
            let mut lazy = Vec::new();
            let walk = walk_json(body.as_bytes(), "body", depth, |loc, text, key| {
                lazy.push((loc.render(), text.to_owned(), key));
                true
            });
            let mut eager = Vec::new();
            let eager_walk = walk_json_eager(body.as_bytes(), "body", depth, |loc, text, key| {
                eager.push((loc.to_owned(), text.to_owned(), key));
                true
            });
            proptest::prop_assert_eq!(walk, eager_walk);
            proptest::prop_assert!(!walk.malformed);
            proptest::prop_assert_eq!(lazy, eager, "{}", body);
        }
    }

    proptest::proptest! {
        #[test]
        fn the_word_scan_finds_the_first_quote_or_backslash(s in proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(b'"'), proptest::strategy::Just(b'\\'), proptest::strategy::Just(b'a'), proptest::strategy::Just(0xa2u8), proptest::strategy::Just(0x5bu8), proptest::strategy::Just(0x21u8), proptest::arbitrary::any::<u8>()],
            0..40,
        )) {
            proptest::prop_assert_eq!(
                quote_or_backslash(&s),
                s.iter().position(|&b| b == b'"' || b == b'\\')
            );
        }
    }

    #[test]
    fn splits_pairs_and_cookies() {
        let p: Vec<_> = pairs(b"a=1&b&&c=x=y").collect();
        assert_eq!(p, [(&b"a"[..], &b"1"[..]), (b"b", b""), (b"c", b"x=y")]);
        let c: Vec<_> = cookies(b"sid=abc; theme = dark;;x").collect();
        assert_eq!(
            c,
            [(&b"sid"[..], &b"abc"[..]), (b"theme", b"dark"), (b"", b"x")]
        );
    }
}

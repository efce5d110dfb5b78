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
    s.split(|&b| b == b'&').filter(|p| !p.is_empty()).map(|p| {
        match p.iter().position(|&b| b == b'=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &p[p.len()..]),
        }
    })
}

/// `name=value` pairs of a `Cookie` header.
pub(crate) fn cookies(s: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    s.split(|&b| b == b';').filter_map(|p| {
        let p = p.trim_ascii();
        if p.is_empty() {
            return None;
        }
        Some(match p.iter().position(|&b| b == b'=') {
            Some(i) => (p[..i].trim_ascii(), p[i + 1..].trim_ascii()),
            None => (&p[..0], p),
        })
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    Object,
    Array(usize),
}

/// Walks `body` as JSON, calling `visit(location, text, is_key)` for every
/// object key and string value (numbers, booleans and null cannot carry an
/// attack). Locations are `root.key[3].name`. `visit` returns false to stop.
pub(crate) fn walk_json(
    body: &[u8],
    root: &str,
    max_depth: usize,
    mut visit: impl FnMut(&str, &str, bool) -> bool,
) -> JsonWalk {
    let mut walk = JsonWalk::default();
    let mut p = Parser { s: body, pos: 0 };
    let mut stack: Vec<Frame> = Vec::new();
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
                        Frame::Object
                    } else {
                        Frame::Array(0)
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
                        if !read_key(&mut p, &mut buf, &mut path, stack.len() <= max_depth) {
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
                    if !p.string(&mut buf) {
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
                (Some(b','), Frame::Object) => {
                    p.pos += 1;
                    path.truncate(mark);
                    if !read_key(&mut p, &mut buf, &mut path, shown) {
                        walk.malformed = true;
                        return walk;
                    }
                    if !visit(&path, &buf, true) {
                        walk.stopped = true;
                        return walk;
                    }
                    want_value = true;
                }
                (Some(b','), Frame::Array(i)) => {
                    p.pos += 1;
                    *frame = Frame::Array(i + 1);
                    path.truncate(mark);
                    if shown {
                        path.push('[');
                        path.push_str(&(i + 1).to_string());
                        path.push(']');
                    }
                    want_value = true;
                }
                (Some(b'}'), Frame::Object) | (Some(b']'), Frame::Array(_)) => {
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

/// Reads `"key" :` into `buf` and appends `.key` to `path` when `shown`.
fn read_key(p: &mut Parser<'_>, buf: &mut String, path: &mut String, shown: bool) -> bool {
    p.skip_ws();
    if p.peek() != Some(b'"') || !p.string(buf) {
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

/// Appends `bytes` to `buf`, invalid UTF-8 as U+FFFD; valid UTF-8 (the usual
/// case) is checked once and copied.
fn push_lossy(buf: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => buf.push_str(text),
        Err(_) => buf.push_str(&String::from_utf8_lossy(bytes)),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
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

    /// A string at `"`, unescaped into `buf` (invalid UTF-8 and lone
    /// surrogates become U+FFFD). False when unterminated.
    fn string(&mut self, buf: &mut String) -> bool {
        buf.clear();
        self.pos += 1;
        let mut raw_start = self.pos;
        loop {
            let Some(b) = self.peek() else {
                return false;
            };
            match b {
                b'"' => {
                    push_lossy(buf, &self.s[raw_start..self.pos]);
                    self.pos += 1;
                    return true;
                }
                b'\\' => {
                    push_lossy(buf, &self.s[raw_start..self.pos]);
                    let Some(e) = self.s.get(self.pos + 1).copied() else {
                        return false;
                    };
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
            seen.push((loc.to_owned(), text.to_owned(), key));
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

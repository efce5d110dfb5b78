//! Path traversal and local file inclusion.
//!
//! The value is already URL-decoded (up to three times) with overlong UTF-8
//! folded, so `%2e%2e%2f`, `%252e%252e%255c` and `%c0%ae%c0%ae%c0%af` all
//! arrive as `../` or `..\`. What is looked for:
//! - a parent-directory step: two or more dots then a separator, at the
//!   start of a path segment (`../`, `..\`, `....//`, `..;/`); one step is
//!   enough, as in the Core Rule Set, because a parameter has no business
//!   climbing directories;
//! - a path to a file only attacks read (`/etc/passwd`, `/proc/self/environ`,
//!   `C:\boot.ini`, `WEB-INF/web.xml`), absolute or after a step;
//! - stream wrappers that read files (`php://filter`, `file://`, `zip://`);
//! - at level 2, dot pairs separated by any repeated non-alphanumeric
//!   character (`..%uEFC8..%uEFC8`), and a NUL that cuts a path short.

use super::prefilter::{BACKSLASH, COLON, DOT, SLASH};
use super::xss::{Needles, find, matches_any};
use super::{Category, Hit, Severity};

const CRIT: Severity = Severity::Critical;

/// Directories and files of Unix systems an attacker reads. Matched at the
/// start of the value, after a traversal step, or after a wrapper.
const UNIX_PATHS: &[&str] = &[
    "etc/",
    "proc/",
    "sys/class",
    "sys/kernel",
    "var/log/",
    "var/lib/",
    "var/run/",
    "var/mail",
    "var/spool/",
    "var/www/",
    "var/apache",
    "var/adm",
    "var/cpanel",
    "var/lib/mysql",
    "root/",
    "home/",
    "usr/local/",
    "usr/pkg",
    "opt/",
    "dev/",
    "boot/",
    "bin/",
    "usr/bin/",
    "usr/sbin/",
    "tmp/",
    "private/etc",
    "private/var",
    "apache/logs",
    "apache2/",
    "logs/",
    "library/",
    "applications/",
    "system/",
    "users/",
];

/// File names that are targets wherever they are.
const SENSITIVE_FILES: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    "etc/motd",
    "etc/master.passwd",
    "etc/security/",
    "etc/httpd",
    "etc/apache",
    "etc/nginx",
    "etc/mysql",
    "etc/php",
    "etc/crontab",
    "etc/sudoers",
    "etc/profile",
    "etc/fstab",
    "proc/self/",
    "proc/version",
    "proc/cpuinfo",
    "proc/net",
    "boot.ini",
    "win.ini",
    "system.ini",
    "windows/system32",
    "winnt/system32",
    "windows/repair",
    "winnt/repair",
    "repair/sam",
    "inetpub/",
    "web-inf/",
    "meta-inf/",
    ".htaccess",
    ".htpasswd",
    ".bash_history",
    ".ssh/",
    "id_rsa",
    "id_dsa",
    "authorized_keys",
    "wp-config.php",
    "web.config",
    "php.ini",
    "httpd.conf",
    "my.cnf",
    "my.ini",
    "access_log",
    "error_log",
    "access.log",
    "error.log",
    ".env",
    ".git/",
    "etc/passwd",
    "environ",
];

static UNIX_PATH_SET: Needles = Needles::new(UNIX_PATHS);

static SENSITIVE_FILE_SET: Needles = Needles::new(SENSITIVE_FILES);

/// Whether a name of [`SENSITIVE_FILES`] counts after any separator: it has a
/// `/` of its own or a leading `.`.
const fn is_separated(name: &str) -> bool {
    let bytes = name.as_bytes();
    if !bytes.is_empty() && bytes[0] == b'.' {
        return true;
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'/' {
            return true;
        }
        i += 1;
    }
    false
}

const SEPARATED_COUNT: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < SENSITIVE_FILES.len() {
        if is_separated(SENSITIVE_FILES[i]) {
            n += 1;
        }
        i += 1;
    }
    n
};

/// The names of [`SENSITIVE_FILES`] that count after any separator, picked at
/// compile time.
const SEPARATED_FILES: &[&str] = &{
    let mut out = [""; SEPARATED_COUNT];
    let (mut i, mut n) = (0, 0);
    while i < SENSITIVE_FILES.len() {
        if is_separated(SENSITIVE_FILES[i]) {
            out[n] = SENSITIVE_FILES[i];
            n += 1;
        }
        i += 1;
    }
    out
};

static SEPARATED_FILE_SET: Needles = Needles::new(SEPARATED_FILES);

/// The first position right after a `/` where one of [`SEPARATED_FILES`]
/// starts: comparing only there finds what searching every position and
/// keeping the matches after a `/` finds.
fn separated_file(s: &[u8]) -> Option<usize> {
    super::steps::add(s.len());
    s.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(p, _)| p + 1)
        .find(|&at| SEPARATED_FILE_SET.prefix_of(&s[at..]).is_some())
}

/// Stream wrappers and schemes that open local files.
const WRAPPERS: &[&str] = &[
    "file:",
    "php://",
    "zip://",
    "phar://",
    "expect://",
    "glob://",
    "compress.zlib://",
    "compress.bzip2://",
    "data://",
    "zlib:",
    "jar:file",
    "netdoc:",
];

static WRAPPER_SET: Needles = Needles::new(WRAPPERS);

/// Looks for traversal in `text`; `had_nul` says a NUL was removed from it.
/// Returns the bytes processed.
#[cfg(test)]
pub(crate) fn detect(text: &str, had_nul: bool, level: u8, hits: &mut Vec<Hit>) -> u64 {
    detect_classified(
        text,
        super::prefilter::classes(text.as_bytes()),
        had_nul,
        level,
        hits,
    )
}

/// [`detect`] for a `text` whose byte classes ([`classes`]) are `mask`: the
/// first tests read the classes instead of the bytes.
pub(crate) fn detect_classified(
    text: &str,
    mask: u32,
    had_nul: bool,
    level: u8,
    hits: &mut Vec<Hit>,
) -> u64 {
    let raw = text.as_bytes();
    // Every rule needs `..`, a separator, or a scheme/drive colon.
    let has_dots = if mask & DOT != 0 {
        find(raw, b"..").is_some()
    } else {
        // What the search would have counted.
        super::steps::add(raw.len());
        false
    };
    let has_colon = mask & COLON != 0;
    if !has_dots && !has_colon && mask & (SLASH | BACKSLASH) == 0 {
        return raw.len() as u64;
    }
    // Lower case, one separator.
    let lower = |b: u8| {
        if b == b'\\' {
            b'/'
        } else {
            b.to_ascii_lowercase()
        }
    };
    super::scratch::with_mapped(raw, lower, |s| {
        scan(s, raw.len(), has_dots, has_colon, had_nul, level, hits)
    })
}

/// The rules of [`detect`] on `s`, the value lower-cased with one separator.
fn scan(
    s: &[u8],
    raw_len: usize,
    has_dots: bool,
    has_colon: bool,
    had_nul: bool,
    level: u8,
    hits: &mut Vec<Hit>,
) -> u64 {
    let mut add = |rule: &'static str, severity: Severity, span: (usize, usize)| {
        if !hits.iter().any(|h| h.rule == rule) {
            hits.push(Hit::new(Category::PathTraversal, rule, severity, span));
        }
    };
    let mut steps = 0;
    let mut first_step: Option<(usize, usize)> = None;
    let mut after_last_step = 0;
    // Without `..` there is no step to look for.
    let mut i = if has_dots { 0 } else { s.len() };
    while let Some(p) = find(&s[i..], b"..") {
        let at = i + p;
        let mut e = at;
        while e < s.len() && s[e] == b'.' {
            e += 1;
        }
        i = e;
        let starts_segment = at == 0 || !s[at - 1].is_ascii_alphanumeric() || s[at - 1] == b'.';
        // `..;/` (path parameters), `.. /`, `..\0/`: junk a server drops before the separator.
        let mut k = e;
        while k < s.len() && k - e < 4 && matches!(s[k], b';' | b' ' | b'%' | b'?') {
            k += 1;
        }
        let ends_step = k == s.len() && at > 0 && s[at - 1] == b'/' || s.get(k) == Some(&b'/');
        if starts_segment && ends_step {
            steps += 1;
            first_step.get_or_insert((at, (k + 1).min(s.len())));
            after_last_step = (k + 1).min(s.len());
        }
    }
    if let Some((from, _)) = first_step {
        let end = s.len().min(after_last_step + 40);
        add("path_traversal.dot-dot", CRIT, (from, end));
        let target = &s[after_last_step..];
        if matches_any(target, &SENSITIVE_FILE_SET).next().is_some() {
            add("path_traversal.sensitive-file", CRIT, (from, end));
        }
    }
    let _ = steps;
    // Absolute paths to system files, and stream wrappers.
    let trimmed_start = s
        .iter()
        .position(|&b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let value = &s[trimmed_start..];
    let wrapper = WRAPPER_SET.prefix_of(value);
    let path = match wrapper {
        Some(w) => {
            add(
                "path_traversal.wrapper",
                CRIT,
                (trimmed_start, s.len().min(trimmed_start + 60)),
            );
            &value[w.len()..]
        }
        None => value,
    };
    let path_start = path.iter().position(|&b| b != b'/').unwrap_or(path.len());
    let absolute = path_start > 0 || drive_letter(path);
    if absolute {
        let rest = strip_drive(&path[path_start..]);
        if UNIX_PATH_SET.prefix_of(rest).is_some()
            || matches_any(rest, &SENSITIVE_FILE_SET).next().is_some()
        {
            add(
                "path_traversal.system-path",
                CRIT,
                (trimmed_start, s.len().min(trimmed_start + 60)),
            );
        }
    }
    // A sensitive file named anywhere, after a separator.
    if let Some(at) = separated_file(s) {
        add(
            "path_traversal.sensitive-file",
            CRIT,
            (at.saturating_sub(1), s.len().min(at + 40)),
        );
    }
    if has_colon && find(s, b"file://").is_some() {
        add("path_traversal.wrapper", CRIT, (0, s.len().min(60)));
    }
    if level >= 2 {
        if let Some(span) = odd_separator_steps(s) {
            add("path_traversal.encoded-steps", CRIT, span);
        }
        if had_nul && s.contains(&b'/') && s.contains(&b'.') {
            add(
                "path_traversal.null-byte",
                Severity::Error,
                (0, s.len().min(60)),
            );
        }
    }
    if level >= 3 && absolute {
        add(
            "path_traversal.absolute-path",
            Severity::Warning,
            (trimmed_start, s.len().min(trimmed_start + 60)),
        );
    }
    2 * raw_len as u64
}

fn drive_letter(s: &[u8]) -> bool {
    s.len() >= 3 && s[0].is_ascii_alphabetic() && s[1] == b':' && s[2] == b'/'
}

fn strip_drive(s: &[u8]) -> &[u8] {
    if drive_letter(s) {
        let rest = &s[3..];
        let start = rest.iter().position(|&b| b != b'/').unwrap_or(rest.len());
        &rest[start..]
    } else {
        s
    }
}

/// `..X..X` with the same non-alphanumeric, non-dot `X` (a separator in an
/// encoding the decoder did not know): two steps at least.
fn odd_separator_steps(s: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(p) = find(&s[i..], b"..") {
        let at = i + p;
        i = at + 2;
        let rest = &s[at + 2..];
        // The separator: one char (maybe multi-byte) up to the next `..`.
        let next = find(rest, b"..")?;
        let sep = &rest[..next];
        if sep.is_empty()
            || sep.len() > 6
            || sep.iter().any(|b| b.is_ascii_alphanumeric() || *b == b'.')
        {
            continue;
        }
        let after = &rest[next + 2..];
        if after.starts_with(sep) {
            return Some((at, s.len().min(at + 40)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str, level: u8) -> Vec<&'static str> {
        let mut hits = Vec::new();
        detect(text, false, level, &mut hits);
        hits.into_iter().map(|h| h.rule).collect()
    }

    #[test]
    fn finds_steps_system_paths_and_wrappers() {
        for attack in [
            "../../../etc/passwd",
            "..\\..\\windows\\win.ini",
            "....//....//etc/hosts",
            "/etc/shadow",
            "C:\\boot.ini",
            "php://filter/convert.base64-encode/resource=index.php",
            "file:///etc/passwd",
            "..;/WEB-INF/web.xml",
            "/var/log/apache2/access.log",
        ] {
            assert!(!rules(attack, 1).is_empty(), "{attack}");
        }
        assert!(rules("..\u{efc8}..\u{efc8}{FILE}", 2).contains(&"path_traversal.encoded-steps"));
    }

    #[test]
    fn the_separated_files_are_the_sensitive_files_with_a_slash_or_a_dot() {
        for name in ["etc/passwd", "proc/self/", ".env", ".git/", "web-inf/"] {
            assert!(SEPARATED_FILES.contains(&name), "{name}");
        }
        for name in ["boot.ini", "win.ini", "environ", "php.ini"] {
            assert!(SENSITIVE_FILES.contains(&name), "{name}");
            assert!(!SEPARATED_FILES.contains(&name), "{name}");
        }
    }

    /// The search it replaced: every needle at every position, kept when
    /// it qualifies and follows a `/`.
    fn separated_file_slow(s: &[u8]) -> Option<usize> {
        matches_any(s, &SENSITIVE_FILE_SET)
            .find(|&(p, j)| {
                let f = SENSITIVE_FILES[j];
                (f.contains('/') || f.starts_with('.')) && p > 0 && s[p - 1] == b'/'
            })
            .map(|(p, _)| p)
    }

    const FILE_PIECES: [&str; 13] = [
        "/",
        "etc/",
        "passwd",
        ".",
        "env",
        "x",
        "..",
        "web-inf/",
        "proc/self/",
        ".git/",
        "boot.ini",
        "a/",
        "windows/system32",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        #[test]
        fn separated_files_agree_with_the_full_search(
            parts in proptest::collection::vec(0..FILE_PIECES.len(), 0..10),
        ) {
            let s: String = parts.iter().map(|&i| FILE_PIECES[i]).collect();
            proptest::prop_assert_eq!(
                separated_file(s.as_bytes()),
                separated_file_slow(s.as_bytes())
            );
        }
    }

    #[test]
    fn leaves_urls_versions_and_prose_alone() {
        for text in [
            "https://example.com/etc/info",
            "version 1.2..3",
            "Wait... what?",
            "men/clothing",
            "/api/v2/orders",
            "https://shop.example.com/cart?step=2",
            "file.tar.gz",
        ] {
            assert_eq!(rules(text, 1), Vec::<&str>::new(), "{text}");
        }
    }
}

//! Embeds the SQL migrations from `migrations/{postgres,sqlite}/` at the workspace root,
//! so the binary carries them and `palisade migrate` needs no files beside it.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    // Read at run time, not with `env!`: a build-script binary compiled for one
    // checkout is reused by another sharing the target directory (CI's cache,
    // git worktrees), and `env!` would point it at the first checkout's files.
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_owned());
    let root = Path::new(&manifest_dir).join("../../migrations");
    println!("cargo::rerun-if-changed={}", root.display());
    let mut out = String::new();
    for backend in ["postgres", "sqlite"] {
        let dir = root.join(backend);
        println!("cargo::rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        let _ = writeln!(
            out,
            "pub(crate) const {}: &[(i64, &str, &str)] = &[",
            backend.to_uppercase()
        );
        for path in files {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let (version, description) = name.split_once('_').unwrap_or_else(|| {
                panic!("migration {name} must be named <version>_<description>.sql")
            });
            let version: i64 = version
                .parse()
                .unwrap_or_else(|_| panic!("migration {name}: version must be a number"));
            let _ = writeln!(
                out,
                "    ({version}, {description:?}, include_str!({:?})),",
                path.canonicalize()
                    .unwrap_or(path.clone())
                    .display()
                    .to_string()
            );
        }
        out.push_str("];\n");
    }
    let dest = Path::new(&env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("migrations.rs");
    fs::write(&dest, out).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
}

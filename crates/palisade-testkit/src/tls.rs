//! Test certificates made with the `openssl` command: a CA, a server certificate for
//! `localhost` only that it signed, and an unrelated CA, for tests that check a client
//! accepts the right server and refuses the wrong one.

use crate::TestkitError;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Writes `ca.crt`/`ca.key`, `server.crt`/`server.key` (for `DNS:localhost`, signed by
/// `ca`; the key is mode 0600 as servers demand) and `other-ca.crt`/`other-ca.key` into `dir`.
pub fn write_test_certificates(dir: &Path) -> Result<(), TestkitError> {
    let run = |args: &[&str]| -> Result<(), TestkitError> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|_| TestkitError::MissingProgram {
                program: "openssl",
                hint: "apt-get install openssl",
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(TestkitError::io(
                format!("openssl {}", args.join(" ")),
                std::io::Error::other(String::from_utf8_lossy(&output.stderr).into_owned()),
            ))
        }
    };
    for ca in ["ca", "other-ca"] {
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=palisade test {ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.crt"),
        ])?;
    }
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .map_err(|e| TestkitError::io("write san.ext", e))?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ])?;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| TestkitError::io("chmod server.key", e))
}

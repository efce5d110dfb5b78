#!/usr/bin/env bash
# libinjection, the peer of request inspection: accuracy on testdata/attacks and
# speed on the typical request's values, from the C library itself.
#
# The C source comes from the PyPI sdist of libinjection-python 1.1.6, which
# ships libinjection 3.9.2 (BSD-3-Clause, its COPYING is in the sdist) under
# libinjection/src; only the C files are compiled, the GPL Cython wrapper is not
# used. pip download is the ordinary PyPI client; nothing else is fetched.
#
# Usage: bench/libinjection/run.sh [scratch dir]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
work="${1:-${TMPDIR:-/tmp}/palisade-libinjection}"
mkdir -p "$work"
if [ ! -f "$work/src/libinjection_sqli.c" ]; then
  pip download --quiet --no-deps --no-binary :all: --dest "$work" libinjection-python==1.1.6
  tar -xzf "$work/libinjection-python-1.1.6.tar.gz" -C "$work"
  rm -rf "$work/src"
  cp -r "$work/libinjection-python-1.1.6/libinjection/src" "$work/src"
fi
src="$work/src"
cc -O2 -fPIC -shared -o "$work/libinjection.so" \
  "$src/libinjection_sqli.c" "$src/libinjection_xss.c" "$src/libinjection_html5.c"
cc -O2 -o "$work/speed" -I"$src" "$here/speed.c" \
  "$src/libinjection_sqli.c" "$src/libinjection_xss.c" "$src/libinjection_html5.c"
python3 "$here/peer.py" --lib "$work/libinjection.so" --speed "$work/speed" \
  --corpus "$root/testdata/attacks" --typical "$root/crates/palisade-guard/benches/typical_request.json"

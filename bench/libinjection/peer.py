#!/usr/bin/env python3
"""libinjection on the attack corpora and on the typical request's values.

Each corpus input is a parameter value as sent. Like a server, the harness
URL-decodes it (with '+' as space) until it stops changing, at most 3 times, and
counts a detection when libinjection_sqli or libinjection_xss fires on the raw
input or on the decoded one: the most generous reading for libinjection, which
is how ModSecurity's @detectSQLi / @detectXSS are used on every argument.
"""
import argparse
import ctypes
import json
import os
import struct
import subprocess
import tempfile
import urllib.parse

LABELS = ["sqli", "xss", "path_traversal", "cmdi", "benign"]


def decode(value: str) -> str:
    for _ in range(3):
        decoded = urllib.parse.unquote_plus(value, errors="surrogateescape")
        if decoded == value:
            break
        value = decoded
    return value


def as_bytes(value: str) -> bytes:
    return value.encode("utf-8", errors="surrogateescape")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--speed", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--typical", required=True)
    args = ap.parse_args()
    lib = ctypes.CDLL(args.lib)
    lib.libinjection_sqli.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    lib.libinjection_xss.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.libinjection_version.restype = ctypes.c_char_p
    fingerprint = ctypes.create_string_buffer(8)

    def fires(value: str):
        sqli = xss = False
        for v in {value, decode(value)}:
            b = as_bytes(v)
            sqli = sqli or bool(lib.libinjection_sqli(b, len(b), fingerprint))
            xss = xss or bool(lib.libinjection_xss(b, len(b)))
        return sqli, xss

    print(f"libinjection {lib.libinjection_version().decode()}")
    print("| label | samples | sqli fires | xss fires | either (detected) |")
    print("|---|---|---|---|---|")
    for label in LABELS:
        path = os.path.join(args.corpus, f"{label}.jsonl")
        n = s = x = e = 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                value = json.loads(line)["input"]
                sqli, xss = fires(value)
                n += 1
                s += sqli
                x += xss
                e += sqli or xss
        pct = lambda k: f"{k} ({100.0 * k / n:.2f}%)"
        print(f"| {label} | {n} | {pct(s)} | {pct(x)} | {pct(e)} |")

    # The typical request's values, as the inspector sees them: query values
    # URL-decoded, string leaves of the JSON body, and the user-agent/referer.
    with open(args.typical, encoding="utf-8") as f:
        request = json.load(f)
    values = [v for _, v in urllib.parse.parse_qsl(request["query"], keep_blank_values=True)]

    def leaves(node):
        if isinstance(node, dict):
            for k, v in node.items():
                yield k
                yield from leaves(v)
        elif isinstance(node, list):
            for v in node:
                yield from leaves(v)
        elif node is not None:
            yield str(node) if not isinstance(node, bool) else ("true" if node else "false")

    values += list(leaves(json.loads(request["body"])))
    values += [request["headers"][h] for h in ("user-agent", "referer")]
    with tempfile.NamedTemporaryFile(delete=False) as out:
        for v in values:
            b = as_bytes(v)
            out.write(struct.pack("<I", len(b)) + b)
    total = sum(len(as_bytes(v)) for v in values)
    print(f"typical request: {len(values)} values, {total} bytes")
    subprocess.run([args.speed, out.name], check=True)
    os.unlink(out.name)


if __name__ == "__main__":
    main()

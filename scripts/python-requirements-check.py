"""Exits 0 when every requirement of the file given is installed at its pinned version."""
import re
import sys
from importlib import metadata

for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, version = re.sub(r"\[.*?\]", "", line).partition("==")
    try:
        if version and metadata.version(name.strip()) != version.strip():
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)

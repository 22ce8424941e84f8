"""The stand-in `bin/opensearch-keystore` of the lab's OpenSearch archive, and the reader its server uses.

OpenSearch keeps secure settings (the S3 repository's `s3.client.<name>.access_key` / `secret_key`) in
config/opensearch.keystore, written by `bin/opensearch-keystore`. This program takes the same commands and options
the roles use (`create`, `list`, `add [-x|--stdin] [-f|--force] NAME...`, `remove NAME...`), but the file it writes
is its own JSON (mode 0660, like the real file), NOT OpenSearch's encrypted keystore format: only the stand-in server
reads it. Standard library only (it runs under the lab host's system python3).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import sys
from pathlib import Path

FORMAT = "nxprovision-standin-keystore-1"
FILE_NAME = "opensearch.keystore"
_NAME = re.compile(r"^[A-Za-z0-9_\-.]+$")


def keystore_path(conf_dir: Path | None = None) -> Path:
    if conf_dir is None:
        default = Path(__file__).resolve().parents[2] / "config"
        conf_dir = Path(os.environ.get("OPENSEARCH_PATH_CONF") or default)
    return conf_dir / FILE_NAME


def read(path: Path) -> dict[str, str]:
    """Every secure setting of the keystore at path ({} when there is none)."""
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not a keystore this stand-in wrote")
    return {k: base64.b64decode(v).decode() for k, v in doc.get("settings", {}).items()}


def write(path: Path, settings: dict[str, str]) -> None:
    doc = {
        "format": FORMAT,
        "note": "nxprovision lab stand-in: NOT OpenSearch's keystore format",
        "settings": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(settings.items())},
    }
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o660)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
    os.chmod(tmp, 0o660)
    os.replace(tmp, path)


def _fresh() -> dict[str, str]:
    # OpenSearch seeds every new keystore (keystore.seed, used by the security features).
    return {"keystore.seed": secrets.token_urlsafe(20)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="opensearch-keystore", description="A tool for managing settings stored in "
                                 "the OpenSearch keystore (nxprovision lab stand-in)")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("create", help="Creates a new opensearch keystore")
    sub.add_parser("list", help="List entries in the keystore")
    add = sub.add_parser("add", help="Add string settings to the keystore")
    add.add_argument("-x", "--stdin", action="store_true", help="Read setting values from stdin")
    add.add_argument("-f", "--force", action="store_true",
                     help="Overwrite existing setting without prompting, creating keystore if necessary")
    add.add_argument("names", nargs="*")
    rm = sub.add_parser("remove", help="Remove settings from the keystore")
    rm.add_argument("names", nargs="*")
    args = ap.parse_args(argv)
    path = keystore_path()
    try:
        current = read(path) if path.exists() else None
    except (ValueError, OSError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 65
    if args.command == "create":
        if current is not None:
            print(f"ERROR: An opensearch keystore already exists at {path}", file=sys.stderr)
            return 1
        write(path, _fresh())
        print(f"Created opensearch keystore in {path.parent}")
        return 0
    if current is None and not (args.command == "add" and args.force):
        print("ERROR: OpenSearch keystore not found. Use 'create' command to create one.", file=sys.stderr)
        return 65
    current = current if current is not None else _fresh()
    if args.command == "list":
        for name in sorted(current):
            print(name)
        return 0
    if not args.names:
        print("ERROR: the setting names can not be empty", file=sys.stderr)
        return 64
    if args.command == "remove":
        missing = [n for n in args.names if n not in current]
        if missing:
            print(f"ERROR: Setting [{missing[0]}] does not exist in the keystore.", file=sys.stderr)
            return 65
        write(path, {k: v for k, v in current.items() if k not in args.names})
        return 0
    for name in args.names:
        if not _NAME.match(name):
            print(f"ERROR: Setting name [{name}] does not match the allowed setting name pattern "
                  f"[{_NAME.pattern}]", file=sys.stderr)
            return 65
        if name in current and not args.force:
            print(f"ERROR: Setting {name} already exists (use --force to overwrite)", file=sys.stderr)
            return 1
        # One line of stdin per setting, as OpenSearch reads it; without --stdin it would prompt.
        value = sys.stdin.readline().rstrip("\r\n") if args.stdin else ""
        if not args.stdin:
            import getpass

            value = getpass.getpass(f"Enter value for {name}: ")
        current[name] = value
    write(path, current)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

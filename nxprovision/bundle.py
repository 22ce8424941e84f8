"""`nxprovision support-bundle`: logs, configuration and status of every host in one redacted archive."""

from __future__ import annotations

import io
import json
import re
import tarfile
import tempfile
import time
from pathlib import Path

# Values of keys like these are replaced even when they are not one of the cluster's known secrets.
_SECRET_KEY = re.compile(r"(?im)^(\s*[\w.\-]*(password|secret|secretkey|token|accesskeyid|status\.key|clid)[\w.\-]*"
                         r"\s*[=:]\s*)(\S.*)$")


def redact(text: str, secrets: list[str]) -> str:
    for s in sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True):
        text = text.replace(s, "********")
    return _SECRET_KEY.sub(lambda m: m.group(1) + "********", text)


def build(collected: Path, extra: dict[str, object], secrets: list[str], out: Path) -> Path:
    """Redact every collected file and write them, with the extra JSON documents, into out (tar.gz)."""
    with tarfile.open(out, "w:gz") as tar:
        for f in sorted(p for p in collected.rglob("*") if p.is_file()):
            data = redact(f.read_text(errors="replace"), secrets).encode()
            info = tarfile.TarInfo(str(Path("bundle") / f.relative_to(collected)))
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
        for name, doc in extra.items():
            data = redact(json.dumps(doc, indent=2, default=str), secrets).encode()
            info = tarfile.TarInfo(f"bundle/{name}.json")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
    out.chmod(0o600)
    return out


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="nxbundle-"))

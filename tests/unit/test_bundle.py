"""Support bundles never carry a secret: known values and anything that looks like one are redacted."""

from __future__ import annotations

import tarfile
from pathlib import Path

from nxprovision.bundle import build, redact


def test_redact_known_values_and_secret_looking_keys() -> None:
    text = (
        "nuxeo.db.password=abcdef123\nnuxeo.aws.secretKey=zzz\nmy.token: t0k3n\n"
        "nuxeo.url=http://x/nuxeo\nurl=mongodb://nuxeo:VALUE-123456@h1\n"
    )
    out = redact(text, ["VALUE-123456"])
    assert "abcdef123" not in out and "zzz" not in out and "t0k3n" not in out and "VALUE-123456" not in out
    assert "nuxeo.url=http://x/nuxeo" in out


def test_bundle_archive_is_redacted(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts" / "front1" / "files"
    hosts.mkdir(parents=True)
    (hosts / "nuxeo.conf").write_text("nuxeo.jwt.secret=SECRET-VALUE-1\nkafka.enabled=true\n")
    out = build(
        tmp_path / "hosts",
        {"status": {"note": "SECRET-VALUE-2"}},
        ["SECRET-VALUE-1", "SECRET-VALUE-2"],
        tmp_path / "b.tar.gz",
    )
    with tarfile.open(out) as tar:
        names = tar.getnames()
        blob = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    assert "bundle/front1/files/nuxeo.conf" in names and "bundle/status.json" in names
    assert b"SECRET-VALUE" not in blob and b"kafka.enabled=true" in blob
    assert oct(out.stat().st_mode & 0o777) == "0o600"

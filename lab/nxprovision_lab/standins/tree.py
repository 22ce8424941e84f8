"""Writing the unpacked tree of a stand-in archive: launcher scripts, runtime programs, the marker."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from nxprovision_lab.standins.spec import RUNTIME

MARKER = "STANDIN"

_LAUNCHER = """#!/bin/sh
# nxprovision lab stand-in for {product}'s {script}: see STANDIN at the top of this installation.
# The lab hosts' system python3 runs it with only the libraries vendored in this archive (-I isolates
# it from PYTHONPATH and user site-packages).
base_dir=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
exec "${{STANDIN_PYTHON:-/usr/bin/python3}}" -I "$base_dir/{program}"{subcommand} "$@"
"""


def write_file(path: Path, text: str, *, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755 if executable else 0o644)


def write_launcher(root: Path, script: str, product: str, program: str, subcommand: str = "") -> None:
    text = _LAUNCHER.format(
        product=product, script=script, program=program, subcommand=f" {subcommand}" if subcommand else ""
    )
    write_file(root / script, text, executable=True)


def copy_runtime(dest_dir: Path, names: Iterable[str]) -> None:
    dest_dir.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copyfile(RUNTIME / n, dest_dir / n)
        (dest_dir / n).chmod(0o644)


def write_marker(root: Path, product: str, version: str, backend: str, notes: Iterable[str]) -> None:
    """The file every stand-in archive carries, so tools and people can tell it from the vendor's."""
    lines = [
        f"# This is NOT {product} {version}: it is a stand-in archive built by nxprovision for its test lab."
    ]
    lines += [f"# {n}" for n in notes]
    lines += ["standin=true", f"product={product}", f"version={version}", f"backend={backend}"]
    write_file(root / MARKER, "\n".join(lines) + "\n")


def make_executable(paths: Iterable[Path]) -> None:
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"expected file {p} is missing from the vendored packages")
        p.chmod(0o755)

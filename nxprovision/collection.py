"""Assemble the Ansible collection (nxprovision.cluster) from the checkout, and build its tarball.

The checkout already has a collection's layout (roles/, playbooks/, plugins/{action,modules,module_utils,filter,test}),
so the collection is a copy of it with three kinds of name made fully qualified, because Ansible resolves them
differently inside a collection than through ansible.cfg's plugin paths:

- `from ansible.module_utils import nx_stamp` only finds the checkout's module_utils through `module_utils =`; in a
  collection the import must name the collection;
- filter and test plugins are never looked up in a playbook's or role's own collection by short name (unlike modules,
  action plugins and roles), so `| nx_lock_pins` and `is nx_started_now` become `nxprovision.cluster.nx_...`.

Everything else keeps its short name: a playbook run from a collection searches that collection for roles, modules and
action plugins, and a role inside a collection searches its own collection first.

Standard library only: setup.py loads this file by path while building the wheel, before any dependency exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

NAMESPACE = "nxprovision"
NAME = "cluster"
FQCN = f"{NAMESPACE}.{NAME}"

# what the collection holds, as paths of the checkout (the same paths inside the collection)
CONTENT = ("roles", "playbooks", "plugins/action", "plugins/modules", "plugins/module_utils", "plugins/filter",
           "plugins/test", "meta/runtime.yml", "galaxy.yml", "requirements.yml", "execution-environment.yml",
           # the settings `nxprovision` runs the playbooks with (plugin paths relative to itself hold in both layouts)
           "ansible.cfg")
# checkout path -> path in the collection: its README is the package's own page (docs/package.md), not the
# checkout's README, which is also the guide to the lab and the tests
PLACED = {"docs/package.md": "README.md"}
SKIP_NAMES = {"__pycache__", ".pytest_cache", ".ansible", ".cache"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".retry")
TEXT_SUFFIXES = (".yml", ".yaml", ".j2", ".py")


def checkout_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _plugin_names(folder: Path, method: str) -> list[str]:
    """The names a filter or test plugin file registers (`def filters/tests(self): return {"name": fn, ...}`)."""
    names: list[str] = []
    for f in sorted(folder.glob("*.py")):
        text = f.read_text()
        body = text.split(f"def {method}(", 1)[1] if f"def {method}(" in text else ""
        names += re.findall(r"""["']([A-Za-z_]\w*)["']\s*:""", body)
    return names


def rewrites(src: Path) -> list[tuple[re.Pattern[str], str]]:
    """(pattern, replacement) pairs that qualify the checkout's module_utils imports, filter and test names."""
    subs: list[tuple[re.Pattern[str], str]] = []
    utils = sorted(p.stem for p in (src / "plugins" / "module_utils").glob("*.py") if p.stem != "__init__")
    coll = f"ansible_collections.{NAMESPACE}.{NAME}.plugins.module_utils"
    for u in utils:
        subs.append((re.compile(rf"^(\s*)from ansible\.module_utils import {u}\b", re.M), rf"\1from {coll} import {u}"))
        subs.append((re.compile(rf"^(\s*)from ansible\.module_utils\.{u} import", re.M), rf"\1from {coll}.{u} import"))
    for name in _plugin_names(src / "plugins" / "filter", "filters"):
        subs.append((re.compile(rf"(\|\s*){name}\b"), rf"\g<1>{FQCN}.{name}"))
    for name in _plugin_names(src / "plugins" / "test", "tests"):
        subs.append((re.compile(rf"(\bis\s+(?:not\s+)?){name}\b"), rf"\g<1>{FQCN}.{name}"))
    return subs


def _copy(src: Path, dst: Path, subs: list[tuple[re.Pattern[str], str]]) -> None:
    if src.is_dir():
        dst.mkdir(parents=True, exist_ok=True)
        for child in sorted(src.iterdir()):
            if child.name in SKIP_NAMES or child.name.endswith(SKIP_SUFFIXES):
                continue
            _copy(child, dst / child.name, subs)
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.suffix in TEXT_SUFFIXES:
        text = src.read_text()
        new = text
        for pattern, repl in subs:
            new = pattern.sub(repl, new)
        if new != text:
            dst.write_text(new)
            shutil.copymode(src, dst)
            return
    shutil.copy2(src, dst)


def assemble(dest: Path, src: Path | None = None) -> Path:
    """Write the collection's tree into `dest` (emptied first) and return it."""
    src = src or checkout_root()
    missing = [c for c in (*CONTENT, *PLACED) if not (src / c).exists()]
    if missing:
        raise FileNotFoundError(f"{src} is not an nxprovision checkout: no {', '.join(missing)}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    subs = rewrites(src)
    for c in CONTENT:
        _copy(src / c, dest / c, subs)
    for c, placed in PLACED.items():
        _copy(src / c, dest / placed, subs)
    return dest


def build(output: Path, src: Path | None = None, work: Path | None = None) -> Path:
    """Assemble the collection, build its tarball into `output` with ansible-galaxy (offline); returns the tarball."""
    src = src or checkout_root()
    work = work or src / "build" / "collection"
    tree = assemble(work / "ansible_collections" / NAMESPACE / NAME, src)
    output.mkdir(parents=True, exist_ok=True)
    galaxy = shutil.which("ansible-galaxy", path=str(Path(sys.executable).parent)) or "ansible-galaxy"
    out = subprocess.run([galaxy, "collection", "build", str(tree), "--output-path", str(output), "--force"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"ansible-galaxy collection build failed: {out.stderr or out.stdout}")
    tarballs = sorted(output.glob(f"{NAMESPACE}-{NAME}-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return tarballs[-1]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=f"build the {FQCN} collection tarball from this checkout")
    parser.add_argument("--output", type=Path, default=checkout_root() / "dist", help="folder for the tarball")
    parser.add_argument("--tree-only", type=Path, metavar="DIR", help="only assemble the collection's tree into DIR")
    args = parser.parse_args(argv)
    if args.tree_only:
        print(assemble(args.tree_only))
    else:
        print(build(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())

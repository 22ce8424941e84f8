"""Offline marketplace packages, as `nuxeoctl mp-*` handles them: a zip with package.xml and
install.xml; installing copies its templates into $NUXEO_HOME/templates and runs
`<config addtemplate=.../>` against nuxeo.conf. State lives in ${nuxeo.mp.dir}/.packages."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import conf


class PackageError(Exception):
    pass


@dataclass
class Package:
    name: str
    version: str
    type: str
    title: str

    @property
    def id(self) -> str:
        return f"{self.name}-{self.version}"


def read_package_xml(text: str) -> Package:
    root = ET.fromstring(text)
    if root.tag != "package" or not root.get("name") or not root.get("version"):
        raise PackageError("package.xml has no <package name=... version=...>")
    return Package(
        root.get("name", ""),
        root.get("version", ""),
        root.get("type", "addon"),
        (root.findtext("title") or "").strip(),
    )


class PackageManager:
    def __init__(self, cfg: conf.NuxeoConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.path("nuxeo.mp.dir", "packages")
        self.store = self.dir / "store"
        self.state_file = self.dir / ".packages"

    def states(self) -> dict[str, str]:
        if not self.state_file.exists():
            return {}
        return conf.parse_properties(self.state_file.read_text())

    def _save_states(self, states: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text("".join(f"{k}={v}\n" for k, v in sorted(states.items())))

    def package(self, pkg_id: str) -> Package:
        return read_package_xml((self.store / pkg_id / "package.xml").read_text())

    def add(self, zip_path: Path) -> Package:
        try:
            with zipfile.ZipFile(zip_path) as z:
                pkg = read_package_xml(z.read("package.xml").decode())
                target = self.store / pkg.id
                if target.exists():
                    shutil.rmtree(target)
                target.mkdir(parents=True)
                for member in z.namelist():
                    dest = (target / member).resolve()
                    if not str(dest).startswith(str(target.resolve())):
                        raise PackageError(f"unsafe path in {zip_path}: {member}")
                z.extractall(target)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise PackageError(f"{zip_path}: not a Nuxeo package ({e})") from e
        states = self.states()
        states.setdefault(pkg.id, "downloaded")
        self._save_states(states)
        return pkg

    def find(self, ref: str) -> str:
        """A package id from a zip path, an id, or a bare name (highest version in the store)."""
        p = Path(ref)
        if ref.endswith(".zip") and p.is_file():
            return self.add(p).id
        states = self.states()
        if ref in states:
            return ref
        candidates = sorted(i for i in states if self.package(i).name == ref)
        if not candidates:
            raise PackageError(f"Package '{ref}' not found (offline: give the package zip)")
        return candidates[-1]

    def install(self, pkg_id: str) -> list[str]:
        states = self.states()
        if states.get(pkg_id) == "started":
            return [f"Package {pkg_id} is already installed"]
        base = self.store / pkg_id
        undo: list[dict[str, str]] = []
        messages = []
        install_xml = base / "install.xml"
        root = ET.fromstring(install_xml.read_text()) if install_xml.exists() else ET.Element("install")
        for cmd in root:
            if cmd.tag == "copy":
                src = base / cmd.get("file", "")
                todir = self.cfg.home / cmd.get("todir", "").replace("${env.home}/", "").strip("/")
                dest = todir / src.name
                if src.is_dir():
                    shutil.copytree(src, dest, dirs_exist_ok=True)
                else:
                    todir.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dest)
                undo.append({"remove": str(dest)})
            elif cmd.tag == "config" and cmd.get("addtemplate"):
                tpl = cmd.get("addtemplate", "")
                current = conf.split_list(self.cfg.get("nuxeo.templates") or "default")
                if tpl not in current:
                    conf.set_in_conf(self.cfg.conf_path, "nuxeo.templates", ",".join([*current, tpl]))
                    self.cfg.user["nuxeo.templates"] = ",".join([*current, tpl])
                    undo.append({"removetemplate": tpl})
                messages.append(f"Added template {tpl} to nuxeo.templates in {self.cfg.conf_path}")
            elif cmd.tag == "config" and cmd.get("set"):
                messages.append(f"Ignored by the stand-in: <config set={cmd.get('set')!r}/>")
        (base / "uninstall.json").write_text(json.dumps(undo))
        states[pkg_id] = "started"
        self._save_states(states)
        messages.append(f"Installed {pkg_id}")
        return messages

    def uninstall(self, pkg_id: str) -> list[str]:
        states = self.states()
        if states.get(pkg_id) != "started":
            raise PackageError(f"Package {pkg_id} is not installed")
        undo_file = self.store / pkg_id / "uninstall.json"
        for step in reversed(json.loads(undo_file.read_text()) if undo_file.exists() else []):
            if "remove" in step:
                p = Path(step["remove"])
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            elif "removetemplate" in step:
                current = conf.split_list(self.cfg.get("nuxeo.templates") or "default")
                kept = [t for t in current if t != step["removetemplate"]]
                conf.set_in_conf(self.cfg.conf_path, "nuxeo.templates", ",".join(kept))
                self.cfg.user["nuxeo.templates"] = ",".join(kept)
        states[pkg_id] = "downloaded"
        self._save_states(states)
        return [f"Uninstalled {pkg_id}"]

    def listing(self) -> list[str]:
        lines = []
        for pkg_id, state in sorted(self.states().items()):
            pkg = self.package(pkg_id)
            lines.append(f"  {state:>10}\t{pkg.name} (id: {pkg_id})")
        return lines

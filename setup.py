"""Adds the Ansible collection to the wheel (pyproject.toml holds everything else).

The wheel installs the collection as site-packages/ansible_collections/nxprovision/cluster, where Ansible finds it on
its own (as it finds the `ansible` bundle's collections), and where nxprovision's project_root() looks when no checkout
is around. The tree is assembled by nxprovision/collection.py, loaded by path: the build has no dependency installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithCollection(build_py):
    def run(self) -> None:
        super().run()
        # an editable install runs from the checkout, which holds the roles and playbooks itself
        if getattr(self, "editable_mode", False):
            return
        spec = importlib.util.spec_from_file_location("_nx_collection", HERE / "nxprovision" / "collection.py")
        assert spec and spec.loader
        collection = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(collection)
        dest = Path(self.build_lib) / "ansible_collections" / collection.NAMESPACE / collection.NAME
        collection.assemble(dest, HERE)


setup(cmdclass={"build_py": BuildWithCollection})

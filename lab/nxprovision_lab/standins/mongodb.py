"""The stand-in `mongodb-linux-<arch>-<build>-<v>.tgz` (the build the model names for a host's release): MongoDB's
layout around SecantusDB."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nxprovision.model.artifacts import Platform, archive_root_dir
from nxprovision_lab.standins import packing, tree, vendor
from nxprovision_lab.standins.spec import HERE, ArchiveSpec, runtime_files

REQUIREMENTS = ("secantusdb==0.7.0b3", "pyyaml==6.0.3")
BACKEND = ("SecantusDB 0.7.0b3 (PyPI), MongoDB wire protocol on WiredTiger; replica-set control plane, "
           "no replication")
RUNTIME = ("mongod_standin.py", "mongod_replset.py", "confparse.py", "javaprops.py", "standin_common.py")

NOTES = (
    "bin/mongod reads mongod's YAML configuration file and serves the MongoDB wire protocol with",
    "SecantusDB. With a replSetName it answers replSetInitiate, replSetReconfig, replSetGetStatus,",
    "replSetGetConfig and hello for every member as mongod does (a member left out of a new configuration",
    "is REMOVED), but it does NOT replicate: the data lives on the primary only (a secondary refuses writes",
    "and holds none of it), and there are no elections (the first member of the configuration is always the",
    "primary), so replSetStepDown is refused: only a secondary can be removed from the set in the lab.",
)


# The stand-in enforces access control but has no localhost exception: the role creates the users before it
# turns access control on (a setting the role offers any inventory, for a mongod started the same way).
INVENTORY_SETTINGS = {"mongodb_users_bootstrap": "unauthenticated"}


def write_tree(root: Path, version: str) -> None:
    tree.write_launcher(root, "bin/mongod", "MongoDB", "lib/standin/mongod_standin.py")
    tree.copy_runtime(root / "lib" / "standin", RUNTIME)
    # SecantusDB is compiled: one build per lab release's python3 (Debian 13 hosts get this same debian12 archive)
    for python in vendor.HOST_PYTHONS:
        vendor.install_target(root / "lib" / vendor.python_dir(python), REQUIREMENTS, python=python)
    tree.write_marker(root, "MongoDB", version, BACKEND, NOTES)


def build(version: str, dest: Path, platform: Platform | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="nx-mongodb-") as tmp:
        root = Path(tmp) / "tree"
        write_tree(root, version)
        packing.write_targz(root, dest, top=archive_root_dir("mongodb", version, platform))


def spec(version: str, platform: Platform | None = None) -> ArchiveSpec:
    platform = platform or Platform()
    return ArchiveSpec(
        product="mongodb",
        version=version,
        platform=platform,
        build=lambda dest: build(version, dest, platform),
        inputs=[HERE / "mongodb.py", HERE / "tree.py", HERE / "vendor.py", *runtime_files(*RUNTIME)],
        requirements=REQUIREMENTS,
        backend=BACKEND,
    )

"""Distribution tree and marketplace packages of the Nuxeo stand-in, and `nuxeoctl` offline commands."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from nxprovision_lab.standins.nuxeo import PYTHON_DEPS, write_distribution, write_package


def ctl(home: Path, conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUXEO_CONF": str(conf)}
    env.pop("NUXEO_HOME", None)
    return subprocess.run(
        [sys.executable, str(home / "bin" / "nuxeoctl"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_tree(tmp_path: Path) -> None:
    home = tmp_path / "nuxeo-server-2023.34-tomcat"
    write_distribution(home, "2023.34")
    assert os.access(home / "bin" / "nuxeoctl", os.X_OK)
    assert "NOT a Nuxeo distribution" in (home / "STANDIN").read_text()
    shipped = (home / "bin" / "nuxeo.conf").read_text()
    assert "nuxeo.force.generation=true" in shipped and "elasticsearch.client=RestClient" in shipped
    sql = (home / "templates/postgresql-quartz-cluster/bin/create-quartz-tables.sql").read_text()
    assert sql.count("CREATE TABLE qrtz_") == 11
    for t in ("default", "common-base", "postgresql", "postgresql-quartz-cluster", "mongodb", "aws"):
        assert (home / "templates" / t / "nuxeo.defaults").is_file()
    assert (home / "lib/standin/nuxeo_standin/ctl.py").is_file() and (home / "packages").is_dir()
    assert any(d.startswith("psycopg") for d in PYTHON_DEPS)


def test_packages_and_offline_commands(tmp_path: Path) -> None:
    home = tmp_path / "nx"
    write_distribution(home, "2023.34")
    s3zip, ui = tmp_path / "s3.zip", tmp_path / "ui.zip"
    write_package(s3zip, "amazon-s3-online-storage", "2023.34")
    write_package(ui, "nuxeo-web-ui", "3.1.9")
    assert 'name="amazon-s3-online-storage"' in zipfile.ZipFile(s3zip).read("package.xml").decode()
    conf = tmp_path / "nuxeo.conf"
    conf.write_text("nuxeo.templates=default,postgresql\nnuxeo.data.dir=" + str(tmp_path / "data") + "\n")
    assert ctl(home, conf, "mp-install", "--accept=true", str(s3zip), str(ui)).returncode == 0
    assert "nuxeo.templates=default,postgresql,s3binaries" in conf.read_text()
    assert (home / "templates/s3binaries/nuxeo.defaults").is_file()
    assert (home / "nxserver/nuxeo.war/ui/index.html").is_file()
    listing = ctl(home, conf, "mp-list").stdout
    assert "started\tamazon-s3-online-storage (id: amazon-s3-online-storage-2023.34)" in listing
    assert ctl(home, conf, "mp-set", "nuxeo-web-ui").returncode == 0  # converges: S3 package removed
    assert "s3binaries" not in conf.read_text().split("nuxeo.templates=")[1].splitlines()[0]
    assert ctl(home, conf, "mp-install", "no-such-package").returncode == 1
    assert ctl(home, conf, "config", "nuxeo.db.host", "db9").returncode == 0
    assert ctl(home, conf, "config", "--get", "nuxeo.db.jdbc.url").stdout.strip() == "jdbc:postgresql://db9:5432/nuxeo"
    assert ctl(home, conf, "register", "--offline").returncode == 0
    assert (tmp_path / "data" / "instance.clid").read_text().startswith("standin-offline-")
    assert ctl(home, conf, "status").returncode == 3
    refused = ctl(home, conf, "start")  # password, user, name missing, no search: refused before any fork
    assert refused.returncode == 1 and "nuxeo.db.name" in refused.stderr

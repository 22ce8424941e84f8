"""Cluster secrets: the list of them, CSPRNG generation, and the ansible-vault encrypted file.

All secrets live in one file, `group_vars/all/secrets.yml`, encrypted whole with ansible-vault.
Generating never overwrites a value that exists; it only adds what is missing.
"""

from __future__ import annotations

import os
import secrets as _csprng
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nxprovision.errors import NxError

SECRETS_RELPATH = Path("group_vars") / "all" / "secrets.yml"
VAULT_PASS_NAME = ".vault-pass"


def _token(n: int) -> Callable[[], str]:
    return lambda: _csprng.token_urlsafe(n)


def _chars(alphabet: str, n: int) -> Callable[[], str]:
    return lambda: "".join(_csprng.choice(alphabet) for _ in range(n))


@dataclass(frozen=True)
class SecretSpec:
    name: str
    description: str
    generate: Callable[[], str]
    # Which clusters need it: "always", "postgresql", "mongodb", "s3", "seaweedfs", "distributed", "backup",
    # "monitoring".
    needed_for: str = "always"


SECRET_SPECS: tuple[SecretSpec, ...] = (
    SecretSpec("nx_secret_db_password", "password of the database user `nuxeo`", _token(24)),
    SecretSpec(
        "nx_secret_db_replication_password",
        "PostgreSQL replication user password",
        _token(24),
        "postgresql",
    ),
    SecretSpec(
        "nx_secret_db_admin_password", "MongoDB administrator password", _token(24), "mongodb"
    ),
    SecretSpec(
        # mongod accepts only base64 characters in a key file (6 to 1024 of them)
        "nx_secret_mongodb_keyfile",
        "MongoDB replica set key file (internal authentication between members)",
        _chars(string.ascii_letters + string.digits, 96),
        "mongodb",
    ),
    SecretSpec(
        "nx_secret_s3_access_key",
        "S3 access key id",
        _chars(string.ascii_uppercase + string.digits, 20),
        "s3",
    ),
    SecretSpec(
        "nx_secret_s3_secret_key",
        "S3 secret access key",
        _chars(string.ascii_letters + string.digits, 40),
        "s3",
    ),
    SecretSpec(
        # pgBackRest encrypts its repository (aes-256-cbc): a copy of the bucket alone restores nothing
        "nx_secret_backup_cipher_pass",
        "pgBackRest repository encryption passphrase (keep it with the vault: a restore needs it)",
        _token(48),
        "backup",
    ),
    SecretSpec("nx_secret_nuxeo_jwt_secret", "nuxeo.jwt.secret, identical cluster-wide", _token(48)),
    SecretSpec(
        "nx_secret_nuxeo_status_key",
        "server.status.key (runningstatus?info=summary and nuxeo.conf encryption)",
        _token(24),
    ),
    SecretSpec("nx_secret_nuxeo_admin_password", "password of the Nuxeo `Administrator` user", _token(18)),
    SecretSpec("nx_secret_haproxy_stats_password", "HAProxy stats page password", _token(18)),
    SecretSpec("nx_secret_monitoring_password",
               "password of the monitoring user (basic auth on Prometheus, Alertmanager and the node exporters)",
               _token(24), "monitoring"),
    # OpenSearch security plugin's internal users (bcrypt hashes in internal_users.yml, never the passwords)
    SecretSpec("nx_secret_search_admin_password", "OpenSearch user `admin` (the opensearch role's own calls)",
               _token(24)),
    SecretSpec("nx_secret_search_nuxeo_password", "OpenSearch user `nuxeo` (Nuxeo's indices)", _token(24)),
    SecretSpec("nx_secret_search_backup_password", "OpenSearch user `backup` (the audit index's snapshots)",
               _token(24)),
    SecretSpec("nx_secret_kafka_keystore_password",
               "password of the Nuxeo nodes' Kafka client key stores (PKCS12, the node's key and certificate)",
               _token(24)),
    SecretSpec(
        "nx_secret_keepalived_password",
        "VRRP authentication between the load balancers (8 characters, VRRP's limit)",
        _chars(string.ascii_letters + string.digits, 8),
        "distributed",
    ),
    SecretSpec(
        "nx_secret_patroni_rest_password",
        "password of Patroni's REST API (basic auth on its unsafe endpoints; patronictl and the playbooks use it)",
        _token(24),
        "distributed",
    ),
    # SeaweedFS signs short-lived tokens with these (security.toml): without one, its volume servers and filer
    # serve and delete files for anyone who reaches them. One key per direction and server, as SeaweedFS has.
    SecretSpec("nx_secret_seaweedfs_jwt_write_key", "SeaweedFS [jwt.signing] key (volume server writes)",
               _token(32), "seaweedfs"),
    SecretSpec("nx_secret_seaweedfs_jwt_read_key", "SeaweedFS [jwt.signing.read] key (volume server reads)",
               _token(32), "seaweedfs"),
    SecretSpec("nx_secret_seaweedfs_filer_jwt_write_key", "SeaweedFS [jwt.filer_signing] key (filer writes)",
               _token(32), "seaweedfs"),
    SecretSpec("nx_secret_seaweedfs_filer_jwt_read_key", "SeaweedFS [jwt.filer_signing.read] key (filer reads)",
               _token(32), "seaweedfs"),
)

SECRET_NAMES: frozenset[str] = frozenset(s.name for s in SECRET_SPECS)


def spec(name: str) -> SecretSpec:
    for s in SECRET_SPECS:
        if s.name == name:
            return s
    raise KeyError(name)


# ---------------------------------------------------------------- vault helpers


def _vault(password: bytes) -> Any:
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    return VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password))])


def read_vault_password(path: Path) -> bytes:
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise NxError(
            f"{path}: cannot read the vault password file ({exc.strerror})",
            "pass --vault-password-file PATH or create the file with mode 0600",
        ) from None
    if not data:
        raise NxError(f"{path}: the vault password file is empty", "write the vault password into it")
    return data


def create_vault_password_file(path: Path) -> None:
    """A new vault password file, mode 0600 from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(_csprng.token_urlsafe(32) + "\n")


def is_vaulted(data: bytes) -> bool:
    return data.lstrip().startswith(b"$ANSIBLE_VAULT;")


def load_secrets_file(path: Path, password: bytes) -> dict[str, Any]:
    if not path.exists():
        return {}
    raw = path.read_bytes()
    if is_vaulted(raw):
        try:
            raw = _vault(password).decrypt(raw)
        except Exception:  # AnsibleError subclasses; wrong password is the usual cause
            raise NxError(
                f"{path}: cannot decrypt with the given vault password",
                "use the vault password file that encrypted it (--vault-password-file)",
            ) from None
    try:
        data = yaml.safe_load(raw) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise NxError(f"{where}: YAML syntax error in the secrets file ({exc.problem or exc.context})",
                      "fix it with `ansible-vault edit` (or restore it from a backup)") from None
    except yaml.YAMLError as exc:
        raise NxError(f"{path}: YAML error in the secrets file ({exc})",
                      "fix it with `ansible-vault edit` (or restore it from a backup)") from None
    if not isinstance(data, dict):
        raise NxError(f"{path}: expected a mapping of secret names to values, found a {type(data).__name__}",
                      "make it `name: value` lines with `ansible-vault edit`")
    return data


def write_secrets_file(path: Path, values: dict[str, Any], password: bytes) -> None:
    header = (
        "# nxprovision secrets: generated with a CSPRNG; edit with `ansible-vault edit`.\n"
        "# `nxprovision init` adds missing secrets and never overwrites existing ones.\n"
    )
    plain = header + yaml.safe_dump(dict(sorted(values.items())), default_flow_style=False, sort_keys=True)
    cipher = _vault(password).encrypt(plain.encode())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(cipher if isinstance(cipher, bytes) else cipher.encode())
    os.replace(tmp, path)


def ensure_secrets(inventory_dir: Path, password: bytes) -> tuple[list[str], list[str]]:
    """Add every missing secret to the inventory's vault file. Returns (added, kept) names."""
    path = inventory_dir / SECRETS_RELPATH
    current = load_secrets_file(path, password)
    added: list[str] = []
    kept: list[str] = []
    for s in SECRET_SPECS:
        if current.get(s.name) not in (None, ""):
            kept.append(s.name)
        else:
            current[s.name] = s.generate()
            added.append(s.name)
    if added or not path.exists():
        write_secrets_file(path, current, password)
    return added, kept

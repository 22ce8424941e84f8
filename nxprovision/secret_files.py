"""Where a cluster's secrets sit on disk: values that are public (the samples'), and files others can read."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

from nxprovision.errors import NxError
from nxprovision.rules.finding import Finding, warning

# SHA-256 of the vault passwords and CA certificates published in inventories/ of this repository: anybody can
# decrypt a vault or sign certificates with them (a unit test keeps this list in step with the samples).
PUBLIC_VAULT_PASSWORDS: frozenset[str] = frozenset({
    "7ed205c33faf96a1cb2cda4249878bdb51970a19de1b7000fbd313da6e08d7e5",  # compact
    "1f711efd980851296fc6051ad5b4d5ad88c57ce5a8d070578852de55ee483265",  # compact-mongodb
    "8247c7e97c289ff835ac017eda47c01390af510c59be15e3cfd59d37702cc7fc",  # distributed
    "8205854891b1ce0f7eb2c6be7c2d1b9845cd7d6ded873312fa0ea6399a28e8d5",  # single
})
PUBLIC_CA_FINGERPRINTS: frozenset[str] = frozenset({
    "0f66c1cd48228e6bd9e56c30b857ce365ca3d45854972294f2df9997a78ab43c",  # compact
    "8489c8d9106d7b64682c1de5a46703d6d449cf5c672a99c20e13a1c52badb1f3",  # compact-mongodb
    "50e65651eed9e5454dfa86140e87612cd4ff7cb6502b396d17334887ce287b65",  # distributed
    "63313acdf1b28aa7b20ae8afe0cdfd0101620d2e06aa3cb74dcf9644a488b81f",  # single
})


def vault_password_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes().strip()).hexdigest()
    except OSError:
        return None


def ca_fingerprint(path: Path) -> str | None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        return x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA256()).hex()
    except (OSError, ValueError):
        return None


def _ca_paths(cluster: Any, inv_dir: Path) -> tuple[Path | None, Path | None]:
    from nxprovision.pki import resolve

    tls = cluster.derived.get("tls") or {}
    if not tls.get("enabled"):
        return None, None
    return resolve(inv_dir, str(tls["ca_cert_file"])), resolve(inv_dir, str(tls["ca_key_file"]))


def public_values(cluster: Any, inv_dir: Path, vpf: Path | None) -> list[str]:
    """What of this inventory's protection is public: 'vault password', 'cluster CA'."""
    found = []
    if vpf is not None and vault_password_digest(vpf) in PUBLIC_VAULT_PASSWORDS:
        found.append(f"vault password ({vpf})")
    ca_cert, _key = _ca_paths(cluster, inv_dir)
    if ca_cert is not None and ca_fingerprint(ca_cert) in PUBLIC_CA_FINGERPRINTS:
        found.append(f"cluster CA ({ca_cert})")
    return found


_PUBLIC_FIX = ("start from `nxprovision init DIR` (a new vault password and CA), or move these to new values: "
               "`ansible-vault rekey` the secrets file and the CA key, or a new CA with `nxprovision certs init` "
               "after moving .pki/ aside")


def refuse_public(cluster: Any, inv_dir: Path, vpf: Path | None, verb: str) -> None:
    public = public_values(cluster, inv_dir, vpf)
    if public:
        raise NxError(f"{inv_dir}: the {' and the '.join(public)} of this inventory are published with nxprovision's "
                      f"samples: anyone could read its secrets or impersonate its hosts; `{verb}` was refused and "
                      "no host was touched", _PUBLIC_FIX)


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def findings(cluster: Any, inv_dir: Path, vpf: Path | None) -> list[Finding]:
    out = [warning("secrets.public", what, "is published with nxprovision's samples; deploy and every changing "
                   "verb refuse it", _PUBLIC_FIX, str(inv_dir))
           for what in public_values(cluster, inv_dir, vpf)]
    from nxprovision.secrets import SECRETS_RELPATH, is_vaulted

    _cert, ca_key = _ca_paths(cluster, inv_dir)
    # The secrets file and the CA key are vault-encrypted (and fine in a clone at 0644) unless someone decrypted
    # them in place; the vault password file is the key to everything.
    in_clear = [p for p in (inv_dir / SECRETS_RELPATH, ca_key)
                if p is not None and p.is_file() and not is_vaulted(p.read_bytes())]
    for path, what in ((vpf, "the vault password file"), *((p, "a decrypted secret file") for p in in_clear)):
        if path is not None and _readable_by_others(path):
            mode = stat.S_IMODE(path.stat().st_mode)
            out.append(warning("secrets.file_mode", what, f"{path} has mode {mode:04o}: other users of this "
                               "machine can read it", f"chmod 600 {path}", str(path)))
    return out

"""The cluster's internal CA, kept in the inventory folder, and reading certificates for `certs check`.

`.pki/ca.crt` is public; `.pki/ca.key` is encrypted whole with ansible-vault (the same password as the secrets
file), so Ansible's file lookup decrypts it on the controller when the tls role signs a host certificate.
The key is never printed and never leaves the controller.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nxprovision.errors import NxError
from nxprovision.secrets import _vault, is_vaulted

CA_CERT_RELPATH = Path(".pki") / "ca.crt"
CA_KEY_RELPATH = Path(".pki") / "ca.key"
CA_DAYS = 3650


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def resolve(inventory_dir: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else inventory_dir / p


def ensure_ca(inventory_dir: Path, password: bytes, cluster_name: str = "nuxeo",
              cert_rel: str = str(CA_CERT_RELPATH), key_rel: str = str(CA_KEY_RELPATH)) -> bool:
    """Create the cluster CA when it does not exist. Returns True when a CA was created.

    An existing CA (or only its certificate: the operator's own CA) is never replaced."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path = resolve(inventory_dir, cert_rel)
    key_path = resolve(inventory_dir, key_rel)
    if cert_path.exists():
        return False
    if key_path.exists():
        raise NxError(f"{key_path} exists but {cert_path} does not",
                      "restore the CA certificate, or remove both to create a new CA")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nxprovision"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{cluster_name} cluster CA")])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cipher = _vault(password).encrypt(pem_key)
    _write_private(key_path, cipher if isinstance(cipher, bytes) else cipher.encode())
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return True


def ca_key_is_vaulted(path: Path) -> bool:
    return path.exists() and is_vaulted(path.read_bytes())


def check_ca_key_opens(path: Path, password: bytes, vault_password_file: Path) -> None:
    """Fail before any host is touched when the CA key does not decrypt with this inventory's vault password.

    Otherwise every host's certificate signing fails on the controller with its output hidden (no_log). The usual
    cause: the vault password file or the secrets were copied from another inventory, but not its .pki/."""
    if not ca_key_is_vaulted(path):
        return
    try:
        _vault(password).decrypt(path.read_bytes())
    except Exception:  # AnsibleError subclasses; a wrong password is the usual cause
        raise NxError(
            f"{path}: the cluster CA key does not decrypt with the vault password in {vault_password_file}",
            "keep the CA (.pki/) with the vault password that encrypted it: copy both from the same inventory, "
            "or move the old .pki/ away and run `nxprovision certs init` for a new CA (every host certificate "
            "is then issued again)",
        ) from None


# ---------------------------------------------------------------- reading certificates


@dataclass
class CertInfo:
    where: str  # "inventory" or a host name
    kind: str  # ca | host | haproxy | postgresql
    path: str
    subject: str = ""
    issuer: str = ""
    sans: list[str] = field(default_factory=list)
    not_after: str = ""
    days_left: int = 0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_pem(data: bytes, where: str, kind: str, path: str, now: _dt.datetime | None = None) -> CertInfo:
    from cryptography import x509

    info = CertInfo(where, kind, path)
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        info.error = f"not a PEM certificate ({exc})"
        return info
    now = now or _dt.datetime.now(_dt.UTC)
    info.subject = cert.subject.rfc4514_string()
    info.issuer = cert.issuer.rfc4514_string()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        info.sans = [f"DNS:{n}" for n in san.get_values_for_type(x509.DNSName)] + [
            f"IP:{ipaddress.ip_address(n)}" for n in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        info.sans = []
    end = cert.not_valid_after_utc
    info.not_after = end.strftime("%Y-%m-%d %H:%M UTC")
    info.days_left = (end - now).days
    return info

"""Java trust stores as Nuxeo's clients read them, turned into Python TLS contexts.

Nuxeo's search REST client, its Kafka client and the AWS SDK each take a trust store (path, password, type)
from nuxeo.conf; without one they use the JVM's default CAs. The stand-in honours the same settings: it reads
the file with the configured type and password (a wrong password fails as Java's KeyStore.load does), trusts
exactly the certificates in it, and checks the server's name (host name or IP address) like the Java clients.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import ssl
import struct
from pathlib import Path

log = logging.getLogger("nuxeo.tls")

JKS_MAGIC = 0xFEEDFEED
JKS_WHITENER = b"Mighty Aphrodite"


class TrustStoreError(Exception):
    pass


def _jks_certs(data: bytes, password: str) -> list[bytes]:
    try:
        magic, version, count = struct.unpack(">III", data[:12])
    except struct.error:
        raise TrustStoreError("Invalid keystore format") from None
    if magic != JKS_MAGIC or version not in (1, 2):
        raise TrustStoreError("Invalid keystore format")
    if password:
        digest = hashlib.sha1(password.encode("utf-16-be") + JKS_WHITENER + data[:-20]).digest()
        if digest != data[-20:]:
            # Java's message for a wrong store password
            raise TrustStoreError("Keystore was tampered with, or password was incorrect")
    pos, certs = 12, []
    try:
        for _ in range(count):
            (tag,) = struct.unpack(">I", data[pos:pos + 4])
            pos += 4
            (n,) = struct.unpack(">H", data[pos:pos + 2])
            pos += 2 + n + 8  # alias, date
            if tag == 1:  # a private key entry: skip the key and its chain
                (n,) = struct.unpack(">I", data[pos:pos + 4])
                pos += 4 + n
                (chain,) = struct.unpack(">I", data[pos:pos + 4])
                pos += 4
                for _c in range(chain):
                    pos = _skip_cert(data, pos, version)
                continue
            if version == 2:
                (n,) = struct.unpack(">H", data[pos:pos + 2])
                pos += 2 + n  # certificate type
            (n,) = struct.unpack(">I", data[pos:pos + 4])
            certs.append(data[pos + 4:pos + 4 + n])
            pos += 4 + n
    except struct.error:
        raise TrustStoreError("Invalid keystore format") from None
    return certs


def _skip_cert(data: bytes, pos: int, version: int) -> int:
    if version == 2:
        (n,) = struct.unpack(">H", data[pos:pos + 2])
        pos += 2 + n
    (n,) = struct.unpack(">I", data[pos:pos + 4])
    return pos + 4 + n


def _pkcs12_certs(data: bytes, password: str) -> list[bytes]:
    try:
        from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
    except ImportError:
        raise TrustStoreError("a PKCS12 trust store needs the cryptography library on this stand-in host") from None
    try:
        _key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode() or None)
    except ValueError as e:
        raise TrustStoreError(f"cannot read the PKCS12 trust store: {e}") from None
    return [c.public_bytes(Encoding.DER) for c in ([cert] if cert else []) + list(extra or [])]


def load_certificates(path: str, password: str, store_type: str) -> list[bytes]:
    """DER certificates of a trust store, read the way Java reads the given type."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise TrustStoreError(f"cannot read trust store {path}: {e}") from None
    kind = (store_type or "JKS").upper()
    if kind == "PEM":
        found = [base64.b64decode(b"".join(block.split(b"-----")[0].split()))
                 for block in data.split(b"-----BEGIN CERTIFICATE-----")[1:]]
        certs = [c for c in found if c]
    elif kind in ("JKS", "PKCS12"):
        # JDK 9+ (keystore.type.compat): either type reads a JKS or a PKCS12 file
        is_jks = data[:4] == struct.pack(">I", JKS_MAGIC)
        certs = _jks_certs(data, password) if is_jks else _pkcs12_certs(data, password)
    else:
        raise TrustStoreError(f"{kind} not found (KeyStore type of {path})")
    if not certs:
        raise TrustStoreError(f"the trust store {path} holds no trusted certificate")
    return certs


def client_context(path: str = "", password: str = "", store_type: str = "") -> ssl.SSLContext:
    """A verifying client context: the trust store's certificates only, or the system's CAs without one
    (the JVM's default trust store), server names checked."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if path:
        certs = load_certificates(path, password, store_type)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        pem = "".join(ssl.DER_cert_to_PEM_cert(c) for c in certs)
        ctx.load_verify_locations(cadata=pem)
    return ctx


def describe(path: str, store_type: str) -> str:
    return f"trust store {path} ({(store_type or 'JKS').upper()})" if path else "the JVM's default trust store"


def load_client_certificate(ctx: ssl.SSLContext, path: str, password: str, store_type: str) -> None:
    """The client's own key and certificate from a key store (Nuxeo's kafka.keystore.*), as Java's KeyManager
    presents them: PKCS12 (or PEM); a wrong password fails as KeyStore.load does."""
    import os
    import tempfile

    kind = (store_type or "JKS").upper()
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TrustStoreError(f"cannot read key store {path}: {e}") from None
    if kind == "PEM":
        pem = data
    elif kind == "PKCS12" or (kind == "JKS" and data[:4] != struct.pack(">I", JKS_MAGIC)):
        try:
            from cryptography.hazmat.primitives.serialization import (
                Encoding,
                NoEncryption,
                PrivateFormat,
                pkcs12,
            )
        except ImportError:
            raise TrustStoreError("a PKCS12 key store needs the cryptography library on this stand-in host") from None
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode() or None)
        except ValueError as e:
            raise TrustStoreError(f"cannot read the PKCS12 key store {path}: {e}") from None
        if key is None or cert is None:
            raise TrustStoreError(f"the key store {path} holds no private key entry")
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()) + b"".join(
            c.public_bytes(Encoding.PEM) for c in [cert, *(extra or [])])
    else:
        raise TrustStoreError(f"{kind} key stores with private keys are not read by the stand-in (use PKCS12)")
    fd, tmp = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        ctx.load_cert_chain(tmp)
    finally:
        os.unlink(tmp)

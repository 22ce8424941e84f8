#!/usr/bin/python
"""Write a Java trust store (JKS) holding the certificates of a PEM file, with the standard library only.

Java clients (Nuxeo's search REST client, its Kafka client, the AWS SDK) read a KeyStore; hosts need no keytool
and no JDK for this module. JKS rather than PKCS12: a PKCS12 file that openssl makes (before OpenSSL 3.2's
-jdktrust) has no Java trust attribute and loads as an empty trust store, while every JDK reads JKS (and JDK 9+
with keystore.type=PKCS12 reads it too, keystore.type.compat).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_truststore
short_description: Write a JKS trust store from PEM certificates (standard library only)
description:
  - Reads every certificate of O(ca_file) and writes them as trusted certificate entries of a JKS key store at
    O(path), protected (integrity) by O(password). The file is only rewritten when the certificates or the
    password differ from what it holds.
options:
  path:
    description: Trust store file to write.
    type: path
    required: true
  ca_file:
    description: PEM file with the certificates to trust (on the managed host).
    type: path
    required: true
  password:
    description: Store password (Java checks the file's integrity digest with it).
    type: str
    required: true
    no_log: true
  alias:
    description: Alias of the first entry; the next ones get -1, -2, ...
    type: str
    default: nxprovision-ca
extends_documentation_fragment: [files]
author: nxprovision
"""

EXAMPLES = r"""
- name: Nuxeo's trust store with the cluster CA
  nx_truststore:
    path: /etc/nxprovision/tls/truststore.jks
    ca_file: /etc/nxprovision/tls/ca.crt
    password: changeit
    mode: "0644"
"""

RETURN = r"""
certificates:
  description: Number of certificates in the trust store.
  type: int
  returned: always
"""

import base64
import hashlib
import os
import re
import struct
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

MAGIC = 0xFEEDFEED
WHITENER = b"Mighty Aphrodite"
PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def pem_certs(data: bytes) -> list[bytes]:
    return [base64.b64decode(b"".join(m.group(1).split())) for m in PEM_CERT.finditer(data)]


def _utf(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


def _digest(password: str, body: bytes) -> bytes:
    return hashlib.sha1(password.encode("utf-16-be") + WHITENER + body).digest()


def build_jks(certs: list[bytes], password: str, alias: str, stamp_ms: int) -> bytes:
    body = struct.pack(">III", MAGIC, 2, len(certs))
    for i, der in enumerate(certs):
        name = alias if i == 0 else f"{alias}-{i}"
        body += struct.pack(">I", 2) + _utf(name) + struct.pack(">q", stamp_ms) + _utf("X.509")
        body += struct.pack(">I", len(der)) + der
    return body + _digest(password, body)


def read_jks(data: bytes, password: str) -> list[bytes] | None:
    """The trusted certificates of a JKS file, or None when it is not one or the password does not match."""
    try:
        magic, version, count = struct.unpack(">III", data[:12])
        if magic != MAGIC or version != 2 or _digest(password, data[:-20]) != data[-20:]:
            return None
        pos, out = 12, []
        for _ in range(count):
            (tag,) = struct.unpack(">I", data[pos:pos + 4])
            if tag != 2:
                return None
            pos += 4
            (n,) = struct.unpack(">H", data[pos:pos + 2])
            pos += 2 + n + 8
            (n,) = struct.unpack(">H", data[pos:pos + 2])
            pos += 2 + n
            (n,) = struct.unpack(">I", data[pos:pos + 4])
            out.append(data[pos + 4:pos + 4 + n])
            pos += 4 + n
        return out
    except struct.error:
        return None


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "ca_file": {"type": "path", "required": True},
            "password": {"type": "str", "required": True, "no_log": True},
            "alias": {"type": "str", "default": "nxprovision-ca"},
        },
        add_file_common_args=True,
        supports_check_mode=True,
    )
    p = module.params
    try:
        with open(p["ca_file"], "rb") as f:
            certs = pem_certs(f.read())
    except OSError as exc:
        module.fail_json(msg=f"cannot read {p['ca_file']}: {exc}")
    if not certs:
        module.fail_json(msg=f"{p['ca_file']} holds no PEM certificate")
    current = None
    if os.path.exists(p["path"]):
        with open(p["path"], "rb") as f:
            current = read_jks(f.read(), p["password"])
    changed = current != certs
    if changed and not module.check_mode:
        data = build_jks(certs, p["password"], p["alias"], int(time.time() * 1000))
        folder = os.path.dirname(p["path"]) or "."
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".truststore")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        module.atomic_move(tmp, p["path"])
    file_args = module.load_file_common_arguments(module.params)
    if os.path.exists(p["path"]):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(changed=changed, certificates=len(certs))


if __name__ == "__main__":
    main()

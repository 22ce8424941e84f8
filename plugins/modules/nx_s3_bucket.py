#!/usr/bin/python
"""Ensure an S3 bucket exists (or only check it is reachable), with SigV4 signing from the standard library.

No boto3 on the target: S3-compatible stores (SeaweedFS, MinIO, Ceph RGW) and AWS S3 all accept a path-style
HEAD/PUT on the bucket signed with AWS Signature Version 4.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_s3_bucket
short_description: Create or check an S3 bucket with SigV4-signed requests (standard library only)
description:
  - Sends a path-style C(HEAD /<bucket>) to the endpoint; with O(state=present) creates the bucket with
    C(PUT /<bucket>) when it does not exist. With O(state=reachable) it only checks the bucket answers to the
    credentials and fails otherwise.
options:
  endpoint:
    description: S3 endpoint URL (http or https), without the bucket.
    type: str
    required: true
  bucket:
    description: Bucket name.
    type: str
    required: true
  region:
    description: Region used in the signature.
    type: str
    default: us-east-1
  access_key:
    description: Access key id.
    type: str
    required: true
    no_log: true
  secret_key:
    description: Secret access key.
    type: str
    required: true
    no_log: true
  state:
    description: V(present) creates the bucket if missing; V(reachable) only checks it.
    type: str
    choices: [present, reachable]
    default: present
  ca_file:
    description:
      - CA certificate (PEM, on the host) trusted for an https endpoint, besides the system's CAs (the cluster CA
        of a self-hosted store). Empty = the system's CAs only.
    type: path
    default: ""
  timeout:
    description: Seconds to wait for each request.
    type: int
    default: 20
author: nxprovision
"""

EXAMPLES = r"""
- name: Create Nuxeo's bucket
  nx_s3_bucket:
    endpoint: http://10.0.0.5:8333
    bucket: nuxeo-binaries
    access_key: "{{ nx_secret_s3_access_key }}"
    secret_key: "{{ nx_secret_s3_secret_key }}"
  no_log: true
"""

RETURN = r"""
status:
  description: HTTP status of the final HEAD request on the bucket.
  type: int
  returned: always
"""

import datetime
import hashlib
import hmac
import ssl
import urllib.error
import urllib.parse
import urllib.request

from ansible.module_utils.basic import AnsibleModule

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tls_context(ca_file=""):
    """The system's CAs plus ca_file; host names are checked (the endpoint's name or IP must be in the cert)."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


def signed_request(method, endpoint, bucket, region, access_key, secret_key, body=b"", timeout=20, ca_file=""):
    url = urllib.parse.urlsplit(endpoint.rstrip("/"))
    host = url.netloc
    path = (url.path or "") + "/" + urllib.parse.quote(bucket, safe="")
    now = datetime.datetime.now(datetime.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed_headers = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            path,
            "",
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            signed_headers,
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _sign(("AWS4" + secret_key).encode(), day)
    k = _sign(k, region)
    k = _sign(k, "s3")
    k = _sign(k, "aws4_request")
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    req_headers = {
        "x-amz-content-sha256": payload_hash,
        "x-amz-date": amz_date,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, "
        f"Signature={signature}",
    }
    req = urllib.request.Request(f"{url.scheme}://{host}{path}", data=body or None, method=method, headers=req_headers)
    try:
        context = tls_context(ca_file) if url.scheme == "https" else None
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def main():
    module = AnsibleModule(
        argument_spec={
            "endpoint": {"type": "str", "required": True},
            "bucket": {"type": "str", "required": True},
            "region": {"type": "str", "default": "us-east-1"},
            "access_key": {"type": "str", "required": True, "no_log": True},
            "secret_key": {"type": "str", "required": True, "no_log": True},
            "state": {"type": "str", "default": "present", "choices": ["present", "reachable"]},
            "ca_file": {"type": "path", "default": ""},
            "timeout": {"type": "int", "default": 20},
        },
        supports_check_mode=True,
    )
    p = module.params
    args = (p["endpoint"], p["bucket"], p["region"], p["access_key"], p["secret_key"])
    try:
        status, body = signed_request("HEAD", *args, timeout=p["timeout"], ca_file=p["ca_file"])
    except OSError as exc:
        module.fail_json(msg=f"cannot reach the S3 endpoint {p['endpoint']}: {exc}")
    if status == 200:
        module.exit_json(changed=False, status=status)
    if status in (401, 403):
        module.fail_json(
            msg=f"bucket {p['bucket']} at {p['endpoint']}: access denied ({status}) with the "
            "configured credentials (nx_secret_s3_access_key / nx_secret_s3_secret_key)",
            status=status,
        )
    if status != 404 or p["state"] == "reachable":
        module.fail_json(msg=f"bucket {p['bucket']} at {p['endpoint']}: HTTP {status}", status=status)
    if module.check_mode:
        module.exit_json(changed=True, status=status)
    body = b""
    if p["region"] != "us-east-1":
        body = (
            f'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<LocationConstraint>{p['region']}</LocationConstraint></CreateBucketConfiguration>"
        ).encode()
    status, text = signed_request("PUT", *args, body=body, timeout=p["timeout"], ca_file=p["ca_file"])
    if status not in (200, 204):
        module.fail_json(
            msg=f"creating bucket {p['bucket']} at {p['endpoint']}: HTTP {status} "
            f"{text[:300].decode(errors='replace')}",
            status=status,
        )
    status, _ = signed_request("HEAD", *args, timeout=p["timeout"], ca_file=p["ca_file"])
    if status != 200:
        module.fail_json(msg=f"bucket {p['bucket']} created but HEAD answers {status}", status=status)
    module.exit_json(changed=True, status=status)


if __name__ == "__main__":
    main()

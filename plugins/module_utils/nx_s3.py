"""A small S3 client (path-style requests signed with AWS Signature Version 4), standard library only.

Used by the nx_s3_objects module on the hosts (no boto3 there) and by the unit tests. Blobs are streamed
through temporary files, never held whole in memory.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CHUNK = 1 << 20
PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")


class S3Error(Exception):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def quote_key(key: str) -> str:
    return urllib.parse.quote(key, safe="/-_.~")


def canonical_query(query: dict[str, str] | None) -> str:
    if not query:
        return ""
    return "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(str(v), safe='-_.~')}"
                    for k, v in sorted(query.items()))


def sign(method: str, host: str, path: str, query: str, payload_hash: str, region: str, access_key: str,
         secret_key: str, now: datetime.datetime | None = None) -> dict[str, str]:
    """The headers of a SigV4-signed request (host, x-amz-date, x-amz-content-sha256 signed)."""
    now = now or datetime.datetime.now(datetime.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, query, "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed,
                           payload_hash])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(("AWS4" + secret_key).encode(), day)
    for part in (region, "s3", "aws4_request"):
        k = _hmac(k, part)
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-content-sha256": payload_hash,
        "x-amz-date": amz_date,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, "
                         f"Signature={signature}",
    }


def parse_list(xml: bytes) -> tuple[list[dict[str, object]], str | None]:
    """Objects ({key, size, etag}) of one ListObjectsV2 page, and the continuation token if truncated."""
    root = ET.fromstring(xml)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    out = []
    for c in root.findall(f"{ns}Contents"):
        out.append({"key": c.findtext(f"{ns}Key") or "", "size": int(c.findtext(f"{ns}Size") or 0),
                    "etag": (c.findtext(f"{ns}ETag") or "").strip('"')})
    truncated = (root.findtext(f"{ns}IsTruncated") or "false").lower() == "true"
    return out, (root.findtext(f"{ns}NextContinuationToken") if truncated else None)


class S3:
    def __init__(self, endpoint: str, region: str, access_key: str, secret_key: str, timeout: float = 60,
                 ca_file: str = "") -> None:
        url = urllib.parse.urlsplit(endpoint.rstrip("/"))
        self.scheme, self.host, self.base = url.scheme, url.netloc, url.path or ""
        self.region, self.access_key, self.secret_key, self.timeout = region, access_key, secret_key, timeout
        # https: the system's CAs plus ca_file (the cluster CA of a self-hosted store), host names checked
        self.context = None
        if self.scheme == "https":
            self.context = ssl.create_default_context()
            if ca_file:
                self.context.load_verify_locations(cafile=ca_file)

    def _open(self, method: str, bucket: str, key: str = "", query: dict[str, str] | None = None,
              body=None, payload_hash: str = EMPTY_SHA256, length: int | None = None):
        path = self.base + "/" + urllib.parse.quote(bucket, safe="") + ("/" + quote_key(key) if key else "")
        q = canonical_query(query)
        headers = sign(method, self.host, path, q, payload_hash, self.region, self.access_key, self.secret_key)
        if length is not None:
            headers["Content-Length"] = str(length)
        req = urllib.request.Request(f"{self.scheme}://{self.host}{path}" + (f"?{q}" if q else ""), data=body,
                                     method=method, headers=headers)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout, context=self.context)
        except urllib.error.HTTPError as exc:
            return exc

    def request(self, method: str, bucket: str, key: str = "", query: dict[str, str] | None = None,
                body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        with self._open(method, bucket, key, query, body or None, payload, len(body) if body else None) as r:
            return r.status if hasattr(r, "status") else r.code, dict(r.headers), r.read()

    def list(self, bucket: str, prefix: str = ""):
        token = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if token:
                query["continuation-token"] = token
            status, _h, body = self.request("GET", bucket, query=query)
            if status != 200:
                raise S3Error(f"listing {bucket}/{prefix}: HTTP {status} {body[:200].decode(errors='replace')}", status)
            objects, token = parse_list(body)
            yield from objects
            if not token:
                return

    def head(self, bucket: str, key: str) -> dict[str, object] | None:
        status, headers, _ = self.request("HEAD", bucket, key)
        if status == 404:
            return None
        if status != 200:
            raise S3Error(f"HEAD {bucket}/{key}: HTTP {status}", status)
        low = {k.lower(): v for k, v in headers.items()}
        return {"size": int(low.get("content-length", 0)), "etag": low.get("etag", "").strip('"')}

    def get_bytes(self, bucket: str, key: str) -> bytes | None:
        status, _h, body = self.request("GET", bucket, key)
        if status == 404:
            return None
        if status != 200:
            raise S3Error(f"GET {bucket}/{key}: HTTP {status}", status)
        return body

    def put_bytes(self, bucket: str, key: str, body: bytes) -> None:
        status, _h, text = self.request("PUT", bucket, key, body=body)
        if status not in (200, 204):
            raise S3Error(f"PUT {bucket}/{key}: HTTP {status} {text[:200].decode(errors='replace')}", status)

    def delete(self, bucket: str, key: str) -> None:
        status, _h, text = self.request("DELETE", bucket, key)
        if status not in (200, 204, 404):
            raise S3Error(f"DELETE {bucket}/{key}: HTTP {status} {text[:200].decode(errors='replace')}", status)

    def copy(self, src: S3, src_bucket: str, src_key: str, bucket: str, key: str) -> dict[str, object]:
        """Stream one object from `src` into this store through a temporary file; returns its size and md5."""
        md5, sha = hashlib.md5(), hashlib.sha256()
        size = 0
        with tempfile.TemporaryFile() as tmp:
            with src._open("GET", src_bucket, src_key) as r:
                status = r.status if hasattr(r, "status") else r.code
                if status != 200:
                    raise S3Error(f"GET {src_bucket}/{src_key}: HTTP {status}", status)
                while chunk := r.read(CHUNK):
                    md5.update(chunk)
                    sha.update(chunk)
                    size += len(chunk)
                    tmp.write(chunk)
            tmp.seek(0)
            with self._open("PUT", bucket, key, body=tmp, payload_hash=sha.hexdigest(), length=size) as r:
                status = r.status if hasattr(r, "status") else r.code
                if status not in (200, 204):
                    raise S3Error(f"PUT {bucket}/{key}: HTTP {status}", status)
        return {"size": size, "md5": md5.hexdigest()}


def needs_copy(source: dict[str, object], target: dict[str, object] | None, md5: str | None = None) -> bool:
    """Whether an object must be (re)copied: missing, another size, or an ETag that is a different plain md5."""
    if target is None or int(target["size"]) != int(source["size"]):
        return True
    want = md5 or (source.get("etag") if PLAIN_MD5.match(str(source.get("etag", ""))) else None)
    have = str(target.get("etag", ""))
    return bool(want and PLAIN_MD5.match(have) and have != want)


def md5_of(etag: str) -> str | None:
    return etag if PLAIN_MD5.match(etag or "") else None



def pool_problems(objects: list[dict[str, object]], pooled: dict[str, dict[str, object] | None]) -> list[str]:
    """The binaries of a manifest the pool cannot give back as they were: missing, or of another size or md5.
    `pooled` maps each key to the pool's HEAD of it (None: absent)."""
    bad = []
    for obj in objects:
        have = pooled.get(str(obj["key"]))
        if have is None:
            bad.append(f"{obj['key']} (missing)")
        elif needs_copy(obj, have, str(obj.get("md5") or "") or None):
            bad.append(f"{obj['key']} ({have['size']} bytes, etag {have.get('etag')}; the manifest says "
                       f"{obj['size']} bytes, md5 {obj.get('md5')})")
    return bad


def expired_manifests(manifests: dict[str, dict[str, object]], kept_sets: list[str], current: str) -> list[str]:
    """Ids of the manifests whose database backup set pgBackRest no longer keeps (`kept_sets`: the labels of its
    `info`): a restore of them cannot work. The current backup's is never one; a manifest without a database
    label (not one of ours) is left alone."""
    kept = set(kept_sets)
    out = []
    for backup_id, manifest in sorted(manifests.items()):
        database = manifest.get("database") if isinstance(manifest, dict) else None
        label = database.get("label") if isinstance(database, dict) else None
        if backup_id != current and label and label not in kept:
            out.append(backup_id)
    return out

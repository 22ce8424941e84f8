"""A small S3 client (AWS Signature V4 over urllib): enough for a binary store keyed by digest.
Hand-written because boto3 is far too heavy to vendor into the stand-in distribution."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class S3Error(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"S3 {status}: {message}")
        self.status = status


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


@dataclass
class S3Client:
    endpoint: str  # "" means AWS itself; a bare host means https
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    path_style: bool = False
    timeout: float = 30.0
    context: ssl.SSLContext | None = None  # https: nuxeo.aws.trustStore* (default: the JVM's CAs)

    def _base(self) -> tuple[str, str]:
        """(scheme://host[:port], path prefix before the key)."""
        ep = self.endpoint.strip() or f"s3.{self.region}.amazonaws.com"
        if "://" not in ep:
            ep = "https://" + ep
        u = urllib.parse.urlsplit(ep)
        if self.path_style:
            return f"{u.scheme}://{u.netloc}", f"/{self.bucket}"
        return f"{u.scheme}://{self.bucket}.{u.netloc}", ""

    def request(
        self,
        method: str,
        key: str = "",
        body: bytes = b"",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        origin, prefix = self._base()
        path = prefix + "/" + urllib.parse.quote(key, safe="/~")
        if not key and prefix:
            path = prefix
        query = query or {}
        canonical_query = "&".join(
            f"{urllib.parse.quote(k, safe='~')}={urllib.parse.quote(v, safe='~')}"
            for k, v in sorted(query.items())
        )
        now = dt.datetime.now(dt.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = now.strftime("%Y%m%d")
        payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        host = urllib.parse.urlsplit(origin).netloc
        hdrs = {"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
        for k, v in (headers or {}).items():
            hdrs[k.lower()] = v.strip()
        signed = sorted(hdrs)
        canonical = "\n".join(
            [
                method,
                path,
                canonical_query,
                *(f"{h}:{hdrs[h]}" for h in signed),
                "",
                ";".join(signed),
                payload_hash,
            ]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        k = _sign(
            _sign(_sign(_sign(("AWS4" + self.secret_key).encode(), day), self.region), "s3"), "aws4_request"
        )
        signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        hdrs["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, SignedHeaders={';'.join(signed)}, "
            f"Signature={signature}"
        )
        url = origin + path + ("?" + canonical_query if canonical_query else "")
        send = {k: v for k, v in hdrs.items() if k != "host"}
        req = urllib.request.Request(
            url, data=body if method in ("PUT", "POST") else None, method=method, headers=send
        )
        try:
            context = self.context if url.startswith("https:") else None
            with urllib.request.urlopen(req, timeout=self.timeout, context=context) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def head_bucket(self) -> None:
        status, _, body = self.request("HEAD")
        if status != 200:
            raise S3Error(status, f"HEAD bucket {self.bucket}: {body[:200]!r}")

    def exists(self, key: str) -> bool:
        status, _, _body = self.request("HEAD", key)
        if status == 404:
            return False
        if status != 200:
            raise S3Error(status, f"HEAD {key}")
        return True

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        status, _, body = self.request("PUT", key, data, headers={"content-type": content_type})
        if status not in (200, 201):
            raise S3Error(status, f"PUT {key}: {body[:300]!r}")

    def get(self, key: str) -> bytes:
        status, _, body = self.request("GET", key)
        if status != 200:
            raise S3Error(status, f"GET {key}: {body[:200]!r}")
        return body

    def delete(self, key: str) -> None:
        status, _, body = self.request("DELETE", key)
        if status not in (200, 204, 404):
            raise S3Error(status, f"DELETE {key}: {body[:200]!r}")

"""OpenSearch / Elasticsearch REST client over urllib, spreading requests round-robin over
`elasticsearch.addressList` and failing over to the next address when one cannot be reached or answers 502, 503
or 504 (a node stopping, a proxy without its backend), as the Elasticsearch/OpenSearch low-level REST client
retries those on another node."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

log = logging.getLogger("nuxeo.search")

# Nuxeo keeps every string as a keyword (exact NXQL `=`) with a text sub-field for full text;
# Answers the low-level REST client retries on the next node rather than returning them.
RETRY_ON_NEXT = (502, 503, 504)
# `ecm:fulltext` is the text Nuxeo copies title, description and extracted blob text into.
DOC_MAPPING: dict[str, Any] = {
    "dynamic_templates": [
        {
            "strings": {
                "match_mapping_type": "string",
                "mapping": {"type": "keyword", "ignore_above": 256, "fields": {"fulltext": {"type": "text"}}},
            }
        }
    ],
    "properties": {
        "ecm:fulltext": {"type": "text"},
        "ecm:isTrashed": {"type": "boolean"},
        "ecm:isVersion": {"type": "boolean"},
        "ecm:isProxy": {"type": "boolean"},
        "dc:created": {"type": "date"},
        "dc:modified": {"type": "date"},
    },
}
AUDIT_MAPPING: dict[str, Any] = {
    "properties": {"eventDate": {"type": "date"}, "logDate": {"type": "date"}, "id": {"type": "long"}}
}


class SearchError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"search {status}: {message}")
        self.status = status


class SearchClient:
    def __init__(
        self,
        addresses: list[str],
        username: str = "",
        password: str = "",
        timeout: float = 10.0,
        context: ssl.SSLContext | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("no search address")
        self.addresses = [a.rstrip("/") if "://" in a else "http://" + a.rstrip("/") for a in addresses]
        self._next = itertools.cycle(range(len(self.addresses)))
        self._lock = threading.Lock()
        self.timeout = timeout
        # https addresses: elasticsearch.restClient.truststore.* (default: the JVM's CAs), names checked
        self.context = context
        self.auth = ""
        if username:
            self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    def _order(self) -> list[str]:
        with self._lock:
            start = next(self._next)
        return self.addresses[start:] + self.addresses[:start]

    def request(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.auth:
            headers["Authorization"] = self.auth
        last: Exception | None = None
        for base in self._order():
            req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
            try:
                context = self.context if base.startswith("https:") else None
                with urllib.request.urlopen(req, timeout=self.timeout, context=context) as resp:
                    text = resp.read()
                    status = resp.status
            except urllib.error.HTTPError as e:
                text, status = e.read(), e.code
            except (urllib.error.URLError, OSError) as e:
                if isinstance(getattr(e, "reason", e), ssl.SSLCertVerificationError):
                    log.error("search node %s: TLS certificate refused: %s", base, getattr(e, "reason", e))
                last = e  # unreachable node: try the next address
                continue
            if status in RETRY_ON_NEXT and status not in ok:
                last = SearchError(status, text[:200].decode(errors="replace"))
                continue
            try:
                payload = json.loads(text) if text else {}
            except ValueError:
                raise SearchError(status, f"not JSON: {text[:200]!r}") from None
            if status not in ok:
                raise SearchError(status, json.dumps(payload)[:300])
            return payload
        raise SearchError(0, f"no search node reachable ({', '.join(self.addresses)}): {last}")

    def health(self) -> str:
        return self.request("GET", "/_cluster/health").get("status", "red")

    def ensure_index(self, name: str, mappings: dict[str, Any], shards: int, replicas: int) -> None:
        try:
            self.request("HEAD", "/" + urllib.parse.quote(name))
            return
        except SearchError as e:
            if e.status != 404:
                raise
        body = {
            "settings": {"number_of_shards": shards, "number_of_replicas": replicas},
            "mappings": mappings,
        }
        try:
            self.request("PUT", "/" + urllib.parse.quote(name), body)
        except SearchError as e:
            # another node created it between our check and our create
            if "already_exists" not in str(e) and e.status != 400:
                raise

    def index(self, name: str, doc_id: str, doc: dict[str, Any], refresh: bool = True) -> None:
        q = "?refresh=true" if refresh else ""
        self.request("PUT", f"/{urllib.parse.quote(name)}/_doc/{urllib.parse.quote(doc_id, safe='')}{q}", doc)

    def delete(self, name: str, doc_id: str) -> None:
        self.request(
            "DELETE",
            f"/{urllib.parse.quote(name)}/_doc/{urllib.parse.quote(doc_id, safe='')}?refresh=true",
            ok=(200, 404),
        )

    def search(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/{urllib.parse.quote(name)}/_search", body)

    def drop_index(self, name: str) -> None:
        self.request("DELETE", "/" + urllib.parse.quote(name), ok=(200, 404))

    def refresh(self, name: str) -> None:
        self.request("POST", f"/{urllib.parse.quote(name)}/_refresh")

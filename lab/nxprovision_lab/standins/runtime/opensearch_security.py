"""The OpenSearch security plugin as the stand-in enforces it, and its securityadmin tool.

Users, roles and role mappings are the plugin's own files (securityconfig/*.yml in 1.x, config/opensearch-security/
in 2.x): the first start loads them into the "security index" when plugins.security.allow_default_init_securityindex
is true (a JSON file under path.data stands for the index), and securityadmin uploads them later, authenticated by a
client certificate whose DN is in plugins.security.authcz.admin_dn, over the node's transport port (as the 1.x tool
does). Every REST request then needs HTTP Basic credentials of an internal user (bcrypt hash): 401 with the plugin's
challenge without or with wrong ones, 403 for an action none of the user's roles allows, 503 while the security
index is not initialized. Actions are named as OpenSearch names them (cluster:monitor/health,
cluster:admin/snapshot/create, indices:data/write/bulk, ...) and matched against the roles' permissions and the
plugin's static action groups.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import socket
import ssl
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

if not __package__:
    # run from an unpacked archive (securityadmin.sh, or imported by bin/opensearch): the vendored libraries first
    sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "lib" / "python")]

REALM = 'Basic realm="OpenSearch Security"'
# type in _meta -> file name in the configuration directory (1.x names)
FILES = {
    "config": "config.yml", "internalusers": "internal_users.yml", "roles": "roles.yml",
    "rolesmapping": "roles_mapping.yml", "actiongroups": "action_groups.yml", "tenants": "tenants.yml",
    "nodesdn": "nodes_dn.yml", "whitelist": "whitelist.yml", "audit": "audit.yml",
}
REQUIRED = ("config", "internalusers", "roles", "rolesmapping", "actiongroups", "tenants")

# The plugin's static action groups (the subset the stand-in's REST API can ask for).
STATIC_ACTION_GROUPS: dict[str, list[str]] = {
    "unlimited": ["*"],
    "cluster_all": ["cluster:*"],
    "cluster_monitor": ["cluster:monitor/*"],
    "cluster_composite_ops_ro": ["indices:data/read/mget*", "indices:data/read/msearch*", "indices:data/read/mtv*",
                                 "indices:admin/aliases/exists*", "indices:admin/aliases/get*",
                                 "indices:data/read/scroll*"],
    "cluster_composite_ops": ["cluster_composite_ops_ro", "indices:data/write/bulk", "indices:admin/aliases*",
                              "indices:data/write/reindex"],
    "cluster_manage_index_templates": ["indices:admin/template/*", "indices:admin/index_template/*"],
    "manage_snapshots": ["cluster:admin/snapshot/*", "cluster:admin/repository/*"],
    "indices_all": ["indices:*"],
    "indices_monitor": ["indices:monitor/*"],
    "read": ["indices:data/read*", "indices:admin/mappings/fields/get*", "indices:admin/resolve/index"],
    "write": ["indices:data/write*", "indices:admin/mapping/put"],
    "delete": ["indices:data/write/delete*"],
    "crud": ["read", "write"],
    "search": ["indices:data/read/search*", "indices:data/read/msearch*", "indices:data/read/scroll*"],
    "get": ["indices:data/read/get*", "indices:data/read/mget*"],
    "index": ["indices:data/write/index*", "indices:data/write/update*", "indices:admin/mapping/put"],
    "create_index": ["indices:admin/create", "indices:admin/mapping/put"],
    "manage": ["indices:monitor/*", "indices:admin/*"],
}
STATIC_ROLES: dict[str, dict[str, Any]] = {
    "all_access": {"cluster_permissions": ["*"],
                   "index_permissions": [{"index_patterns": ["*"], "allowed_actions": ["*"]}]},
}


class SecurityError(Exception):
    pass


def config_dir(base: Path, conf_dir: Path, version: str) -> Path:
    """Where the plugin keeps its configuration files: inside the plugin in 1.x, config/opensearch-security in 2.x."""
    major = int(version.split(".")[0] or "1") if version[:1].isdigit() else 1
    if major >= 2:
        return conf_dir / "opensearch-security"
    return base / "plugins" / "opensearch-security" / "securityconfig"


def load_dir(path: Path) -> dict[str, Any]:
    """The configuration files of a directory, checked as securityadmin checks them (type and version)."""
    import yaml  # vendored

    out: dict[str, Any] = {}
    for kind, name in FILES.items():
        f = path / name
        if not f.is_file():
            if kind in REQUIRED:
                raise SecurityError(f"ERR: {f} does not exist or is not readable")
            continue
        try:
            data = yaml.safe_load(f.read_text()) or {}
        except yaml.YAMLError as e:
            raise SecurityError(f"ERR: {f} is not valid YAML: {e}") from None
        meta = data.get("_meta") or {}
        if str(meta.get("type", "")) != kind:
            raise SecurityError(f"ERR: {f}: _meta.type must be '{kind}', not '{meta.get('type')}'")
        if int(meta.get("config_version", 1)) != 2:
            raise SecurityError(f"ERR: {f}: config_version 2 expected")
        out[kind] = data
    return out


def _norm_dn(dn: str) -> str:
    return ",".join(part.strip().split("=", 1)[0].upper() + "=" + part.strip().split("=", 1)[-1]
                    for part in dn.split(",") if part.strip())


def peer_dn(cert: dict) -> str:
    """A peer certificate's subject as the plugin writes it (RFC 2253: most specific first)."""
    names = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
             "localityName": "L", "stateOrProvinceName": "ST", "domainComponent": "DC"}
    parts = []
    for rdn in reversed(cert.get("subject", ())):
        for k, v in rdn:
            parts.append(f"{names.get(k, k)}={v}")
    return ",".join(parts)


def _verify_hash(password: str, hashed: str) -> bool:
    try:
        import bcrypt  # type: ignore[import-not-found]

        try:
            return bool(bcrypt.checkpw(password.encode(), hashed.encode()))
        except ValueError:
            return False
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # type: ignore[import-not-found]

        return crypt.crypt(password, hashed) == hashed


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class Security:
    def __init__(self, settings: dict[str, Any], files_dir: Path, state_file: Path, log: Any) -> None:
        self.log = log
        self.files_dir, self.state_file = files_dir, state_file
        self.admin_dn = {_norm_dn(d) for d in _as_list(settings.get("plugins.security.authcz.admin_dn"))}
        self.nodes_dn = {_norm_dn(d) for d in _as_list(settings.get("plugins.security.nodes_dn"))}
        self.lock = threading.Lock()
        self.config: dict[str, Any] | None = None
        self._cache: dict[tuple[str, str], dict[str, Any] | None] = {}
        if state_file.is_file():
            self.config = json.loads(state_file.read_text())
            log(f"security index: loaded ({', '.join(sorted(self.config))})")
        elif str(settings.get("plugins.security.allow_default_init_securityindex", "false")).lower() == "true":
            try:
                self._store(load_dir(files_dir))
                log(f"security index initialized from {files_dir} (allow_default_init_securityindex)")
            except SecurityError as e:
                log(f"security index NOT initialized from {files_dir}: {e}")
        else:
            log("OpenSearch Security not initialized: run securityadmin")

    # --- configuration ---------------------------------------------------------------------------

    def _store(self, config: dict[str, Any]) -> None:
        with self.lock:
            self.config = config
            self._cache.clear()
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(config))
            tmp.chmod(0o600)
            tmp.replace(self.state_file)

    def upload(self, config: dict[str, Any]) -> list[str]:
        missing = [k for k in REQUIRED if k not in config]
        if missing:
            raise SecurityError(f"missing configuration types: {', '.join(missing)}")
        self._store(config)
        return sorted(config)

    # --- authentication --------------------------------------------------------------------------

    def authenticate(self, header: str) -> dict[str, Any] | None:
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        key = (user, hashlib.sha256(password.encode()).hexdigest())
        with self.lock:
            if key in self._cache:
                return self._cache[key]
            config = self.config or {}
        entry = (config.get("internalusers") or {}).get(user)
        found = None
        if isinstance(entry, dict) and user != "_meta" and entry.get("hash") and _verify_hash(password, entry["hash"]):
            found = {"name": user, "backend_roles": _as_list(entry.get("backend_roles")), "roles": self._roles(user,
                     _as_list(entry.get("backend_roles")))}
        with self.lock:
            self._cache[key] = found
        return found

    def _roles(self, user: str, backend_roles: list[str]) -> list[str]:
        mapping = (self.config or {}).get("rolesmapping") or {}
        out = []
        for role, m in mapping.items():
            if role == "_meta" or not isinstance(m, dict):
                continue
            if user in _as_list(m.get("users")) or set(backend_roles) & set(_as_list(m.get("backend_roles"))):
                out.append(role)
        return sorted(out)

    # --- authorization ---------------------------------------------------------------------------

    def _expand(self, names: list[str], seen: set[str] | None = None) -> list[str]:
        groups = dict(STATIC_ACTION_GROUPS)
        for name, g in ((self.config or {}).get("actiongroups") or {}).items():
            if name != "_meta" and isinstance(g, dict):
                groups[name] = _as_list(g.get("allowed_actions"))
        seen = seen or set()
        out: list[str] = []
        for n in names:
            if n in groups and n not in seen:
                seen.add(n)
                out += self._expand(groups[n], seen)
            else:
                out.append(n)
        return out

    def _role(self, name: str) -> dict[str, Any]:
        if name in STATIC_ROLES:
            return STATIC_ROLES[name]
        r = ((self.config or {}).get("roles") or {}).get(name)
        return r if isinstance(r, dict) else {}

    def allowed(self, user: dict[str, Any], action: str, indices: list[str]) -> bool:
        roles = [self._role(r) for r in user["roles"]]
        if not indices:
            return any(fnmatch.fnmatchcase(action, p) for r in roles
                       for p in self._expand(_as_list(r.get("cluster_permissions"))))
        # composite actions named indices:* that OpenSearch checks as cluster permissions (bulk, mget, ...) are
        # allowed by either kind
        for index in indices:
            ok = False
            for r in roles:
                for perm in r.get("index_permissions") or []:
                    patterns = _as_list(perm.get("index_patterns"))
                    actions = self._expand(_as_list(perm.get("allowed_actions")))
                    if any(fnmatch.fnmatchcase(index, p) for p in patterns) and \
                            any(fnmatch.fnmatchcase(action, a) for a in actions):
                        ok = True
            if not ok:
                return False
        return True

    def check(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes] \
            | None:
        """None when the request may go on; else the plugin's answer (status, headers, body)."""
        if self.config is None:
            return 503, [("Content-Type", "text/plain; charset=UTF-8")], b"OpenSearch Security not initialized."
        user = self.authenticate(headers.get("Authorization") or "")
        if user is None:
            return 401, [("WWW-Authenticate", REALM), ("Content-Type", "text/plain; charset=UTF-8")], b"Unauthorized"
        parts = [p for p in path.split("?", 1)[0].split("/") if p]
        if parts[:2] in (["_plugins", "_security"], ["_opendistro", "_security"]) and parts[2:3] == ["authinfo"]:
            info = {"user": f"User [name={user['name']}, backend_roles={user['backend_roles']}]",
                    "user_name": user["name"], "backend_roles": user["backend_roles"], "roles": user["roles"],
                    "custom_attribute_names": [], "tenants": {}, "principal": None, "peer_certificates": "0"}
            return 200, [("Content-Type", "application/json; charset=UTF-8")], json.dumps(info).encode()
        for action, indices in actions(method, parts, body):
            if not self.allowed(user, action, indices):
                msg = (f"no permissions for [{action}] and User [name={user['name']}, backend_roles="
                       f"{user['backend_roles']}, requestedTenant=null]")
                err = {"error": {"root_cause": [{"type": "security_exception", "reason": msg}],
                                 "type": "security_exception", "reason": msg}, "status": 403}
                return 403, [("Content-Type", "application/json; charset=UTF-8")], json.dumps(err).encode()
        return None


def _indices(expr: str) -> list[str]:
    return [i for i in expr.split(",") if i]


def _bulk_indices(body: bytes, default: list[str]) -> list[str]:
    out: set[str] = set(default)
    lines = body.decode("utf-8", "replace").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        try:
            meta = json.loads(line)
        except ValueError:
            continue
        if not isinstance(meta, dict) or len(meta) != 1:
            continue
        op, args = next(iter(meta.items()))
        if isinstance(args, dict) and args.get("_index"):
            out.add(str(args["_index"]))
        if op in ("index", "create", "update"):
            i += 1  # the document line
    return sorted(out)


def actions(method: str, parts: list[str], body: bytes) -> list[tuple[str, list[str]]]:
    """The (action, indices) pairs OpenSearch checks for a REST request; empty indices = a cluster action."""
    m = method.upper()
    if not parts:
        return [("cluster:monitor/main", [])]
    head = parts[0]
    if head == "_cluster":
        sub = parts[1] if len(parts) > 1 else ""
        if sub == "settings":
            return [("cluster:admin/settings/update" if m in ("PUT", "POST") else "cluster:monitor/state", [])]
        if sub == "health":
            return [("cluster:monitor/health", [])]
        if sub == "stats":
            return [("cluster:monitor/stats", [])]
        if sub == "voting_config_exclusions":
            kind = "clear_exclusions" if m == "DELETE" else "add_exclusions"
            return [(f"cluster:admin/voting_config/{kind}", [])]
        return [("cluster:monitor/state", [])]
    if head == "_snapshot":
        if len(parts) <= 2:
            if len(parts) == 2 and parts[1] == "_status":
                return [("cluster:admin/snapshot/status", [])]
            kind = {"GET": "get", "HEAD": "get", "DELETE": "delete"}.get(m, "put")
            return [(f"cluster:admin/repository/{kind}", [])]
        if parts[2] == "_verify":
            return [("cluster:admin/repository/verify", [])]
        if parts[2] == "_cleanup":
            return [("cluster:admin/repository/_cleanup", [])]
        if parts[-1] == "_restore":
            return [("cluster:admin/snapshot/restore", [])]
        if parts[-1] == "_status":
            return [("cluster:admin/snapshot/status", [])]
        kind = {"GET": "get", "HEAD": "get", "DELETE": "delete"}.get(m, "create")
        return [(f"cluster:admin/snapshot/{kind}", [])]
    if head == "_nodes":
        if parts[-1] == "reload_secure_settings":
            return [("cluster:admin/nodes/reload_secure_settings", [])]
        return [("cluster:monitor/nodes/stats" if "stats" in parts else "cluster:monitor/nodes/info", [])]
    if head in ("_plugins", "_opendistro") and parts[1:2] == ["_security"]:
        return [("restapi:admin/security", [])]
    if head in ("_cat", "_tasks", "_remote", "_ingest", "_script_context", "_scripts"):
        return [("cluster:monitor/state", [])]
    if head in ("_template", "_index_template", "_component_template"):
        kind = {"GET": "get", "HEAD": "get", "DELETE": "delete"}.get(m, "put")
        return [(f"indices:admin/template/{kind}", [])]
    if head == "_bulk":
        return [("indices:data/write/bulk", []),
                *[("indices:data/write/bulk[s]", [i]) for i in _bulk_indices(body, [])]]
    if head in ("_mget",):
        return [("indices:data/read/mget", [])]
    if head in ("_msearch",):
        return [("indices:data/read/msearch", [])]
    if head == "_search" and parts[1:2] == ["scroll"]:
        return [("indices:data/read/scroll" if m != "DELETE" else "indices:data/read/scroll/clear", [])]
    if head in ("_search", "_count"):
        return [("indices:data/read/search", ["*"])]
    if head in ("_aliases",):
        if m in ("POST", "PUT"):
            try:
                acts = json.loads(body or b"{}").get("actions", [])
            except ValueError:
                acts = []
            idx = sorted({i for a in acts if isinstance(a, dict) for v in a.values() if isinstance(v, dict)
                          for i in _as_list(v.get("index") or v.get("indices"))})
            return [("indices:admin/aliases", idx or ["*"])]
        return [("indices:admin/aliases/get", ["*"])]
    if head == "_alias":
        return [("indices:admin/aliases/get", ["*"])]
    if head in ("_refresh", "_flush", "_stats", "_mapping", "_settings", "_all"):
        return [({"_refresh": "indices:admin/refresh", "_flush": "indices:admin/flush",
                  "_stats": "indices:monitor/stats", "_mapping": "indices:admin/mappings/get",
                  "_settings": "indices:monitor/settings/get", "_all": "indices:admin/get"}[head], ["*"])]
    if head.startswith("_"):
        return [("cluster:admin/" + head.lstrip("_"), [])]
    # /<index>[/...]
    idx = _indices(head)
    rest = parts[1:]
    op = rest[0] if rest else ""
    if not rest:
        return [({"PUT": "indices:admin/create", "DELETE": "indices:admin/delete"}.get(m, "indices:admin/get"), idx)]
    table = {
        "_doc": {"GET": "indices:data/read/get", "HEAD": "indices:data/read/get",
                 "DELETE": "indices:data/write/delete"}.get(m, "indices:data/write/index"),
        "_create": "indices:data/write/index",
        "_update": "indices:data/write/update",
        "_source": "indices:data/read/get",
        "_search": "indices:data/read/search",
        "_count": "indices:data/read/search",
        "_msearch": "indices:data/read/msearch",
        "_mget": "indices:data/read/mget",
        "_bulk": "indices:data/write/bulk[s]",
        "_mapping": "indices:admin/mapping/put" if m in ("PUT", "POST") else "indices:admin/mappings/get",
        "_mappings": "indices:admin/mapping/put" if m in ("PUT", "POST") else "indices:admin/mappings/get",
        "_settings": "indices:admin/settings/update" if m in ("PUT", "POST") else "indices:monitor/settings/get",
        "_refresh": "indices:admin/refresh",
        "_flush": "indices:admin/flush",
        "_close": "indices:admin/close",
        "_open": "indices:admin/open",
        "_alias": "indices:admin/aliases" if m in ("PUT", "POST", "DELETE") else "indices:admin/aliases/get",
        "_aliases": "indices:admin/aliases" if m in ("PUT", "POST", "DELETE") else "indices:admin/aliases/get",
        "_delete_by_query": "indices:data/write/delete/byquery",
        "_update_by_query": "indices:data/write/update/byquery",
        "_stats": "indices:monitor/stats",
        "_forcemerge": "indices:admin/forcemerge",
    }
    action = table.get(op, "indices:admin/" + op.lstrip("_") if op.startswith("_") else "indices:data/write/index")
    if op == "_bulk":
        return [("indices:data/write/bulk", []), *[("indices:data/write/bulk[s]", [i]) for i in
                                                   _bulk_indices(body, idx)]]
    return [(action, idx)]


# --- securityadmin over the transport port -----------------------------------------------------------


def admin_answer(security: Security | None, dn: str, request: dict[str, Any], peer: str, log: Any) -> dict[str, Any]:
    """securityadmin's request on the transport port (opensearch_replication serves the port): only a certificate
    whose DN is in plugins.security.authcz.admin_dn may upload; a node certificate is told it is one, as the 1.x
    tool reports it."""
    if security is None:
        return {"ok": False, "error": "the security plugin is not enabled on this node"}
    try:
        if dn in security.nodes_dn:
            return {"ok": False, "node": True, "dn": dn}
        if dn not in security.admin_dn:
            return {"ok": False, "admin": False, "dn": dn}
        if request.get("action") == "upload":
            types = security.upload(request.get("config") or {})
            log(f"securityadmin ({dn}) from {peer} updated the security index: {', '.join(types)}")
            return {"ok": True, "admin": True, "dn": dn, "types": types}
        return {"ok": True, "admin": True, "dn": dn}
    except (SecurityError, ValueError, OSError) as e:
        return {"ok": False, "error": str(e)}


def norm_dn(dn: str) -> str:
    return _norm_dn(dn)


def admin_main(argv: list[str]) -> int:
    """plugins/opensearch-security/tools/securityadmin.sh: the options the 1.x tool takes for PEM certificates."""
    ap = argparse.ArgumentParser(prog="securityadmin.sh", add_help=False, allow_abbrev=False)
    ap.add_argument("-cd", "--configdir")
    ap.add_argument("-h", "--hostname", default="localhost")
    ap.add_argument("-p", "--port", type=int, default=9300)
    ap.add_argument("-cacert", dest="cacert")
    ap.add_argument("-cert", dest="cert")
    ap.add_argument("-key", dest="key")
    ap.add_argument("-keypass", dest="keypass")
    ap.add_argument("-icl", "--ignore-clustername", action="store_true")
    ap.add_argument("-nhnv", "--disable-host-name-verification", action="store_true")
    ap.add_argument("-arc", "--accept-red-cluster", action="store_true")
    ap.add_argument("--help", action="help")
    args = ap.parse_args(argv)
    print("Security Admin v7 (nxprovision lab stand-in)")
    if not (args.cacert and args.cert and args.key):
        print("ERR: -cacert, -cert and -key are required (PEM admin certificate)")
        return 255
    key_text = Path(args.key).read_text(errors="replace") if Path(args.key).is_file() else ""
    if "-----BEGIN PRIVATE KEY-----" not in key_text and "-----BEGIN ENCRYPTED PRIVATE KEY-----" not in key_text:
        print(f"ERR: {args.key}: the key must be a PKCS#8 PEM file")
        return 255
    config: dict[str, Any] = {}
    if args.configdir:
        try:
            config = load_dir(Path(args.configdir))
        except SecurityError as e:
            print(str(e))
            return 255
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=args.cacert)
    ctx.check_hostname = not args.disable_host_name_verification
    ctx.load_cert_chain(args.cert, args.key, password=args.keypass or None)
    print(f"Will connect to {args.hostname}:{args.port} ...", end=" ")
    try:
        with socket.create_connection((args.hostname, args.port), timeout=30) as raw, \
                ctx.wrap_socket(raw, server_hostname=args.hostname) as tls:
            f = tls.makefile("rwb")
            f.write(json.dumps({"action": "upload" if config else "whoami", "config": config}).encode() + b"\n")
            f.flush()
            answer = json.loads(f.readline() or b"{}")
    except (OSError, ssl.SSLError, ValueError) as e:
        print(f"failed\nERR: Cannot connect to OpenSearch. Please refer to opensearch logfile for more information\n"
              f"Trace:\n{e}")
        return 255
    print("done")
    if answer.get("node"):
        print("ERR: Seems you use a node certificate. This is not permitted, you have to use a client certificate "
              "and register it as admin_dn in opensearch.yml")
        return 255
    if answer.get("admin") is False:
        print(f"ERR: Seems you use a client certificate but this one is not registered as admin_dn ({answer['dn']})")
        return 255
    if not answer.get("ok"):
        print(f"ERR: {answer.get('error', 'unknown error')}")
        return 255
    for t in answer.get("types", []):
        print(f"Will update '_doc/{t}' with {Path(args.configdir or '.') / FILES[t]}\n"
              f"   SUCC: Configuration for '{t}' created or updated")
    print("Done with success")
    return 0


if __name__ == "__main__":
    sys.exit(admin_main(sys.argv[1:]))

"""Reading nuxeo.conf the way Nuxeo's launcher does: properties syntax, template defaults layering,
`nuxeo.append.templates.*`, `${key}` substitution, and the checks that make Nuxeo refuse to start.

Stdlib only: this module is copied into the stand-in distribution and runs on the lab hosts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

DB_TEMPLATES_SQL = ("postgresql",)
DB_TEMPLATE_MONGO = "mongodb"
# nuxeo.conf keys a PostgreSQL template needs from the operator; the template's own values are
# placeholders (localhost / "password") that Nuxeo's DB check would fail to log in with.
SQL_REQUIRED_KEYS = ("nuxeo.db.host", "nuxeo.db.name", "nuxeo.db.user", "nuxeo.db.password")
# Since LTS 2025 these keys have no effect (the search client and audit store are packages with keys of their
# own: doc.nuxeo.com/nxdoc/upgrade-from-lts-2023-to-lts-2025/); the stand-in logs them and never uses them.
DEAD_KEY_PREFIXES_2025 = ("elasticsearch.", "audit.elasticsearch.")
# The JDK each LTS needs (doc.nuxeo.com compatibility matrix); lines before 2025 are not checked by the stand-in.
JAVA_BY_LTS = {2025: 21}
SECRET_HINTS = ("password", "secret", "secretkey", "token", "jaas.config", "status.key")
_SUBST = re.compile(r"\$\{([^}]+)\}")


class ConfigError(Exception):
    """nuxeo.conf or the templates cannot be read at all (missing template, unreadable file)."""


def unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n == "u" and i + 6 <= len(text):
                try:
                    out.append(chr(int(text[i + 2 : i + 6], 16)))
                    i += 6
                    continue
                except ValueError:
                    pass
            out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _split_key_value(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in "=: \t":
            break
        i += 1
    key = line[:i]
    rest = line[i:].lstrip(" \t")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t")
    return unescape(key), unescape(rest)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, logical line) pairs with comments dropped and `\\` continuations joined."""
    result: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip(" \t\f")
        if not pending and (not line or line[0] in "#!"):
            continue
        if not pending:
            start = number
        # an odd number of trailing backslashes continues the line
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continue
        result.append((start, pending + line))
        pending = ""
    if pending:
        result.append((start, pending))
    return result


def parse_properties(text: str) -> dict[str, str]:
    """Java properties, plus the launcher's rule that `KEY=$KEY more` appends to the earlier value
    (how the shipped nuxeo.conf builds JAVA_OPTS over several lines)."""
    props: dict[str, str] = {}
    for _, line in logical_lines(text):
        key, value = _split_key_value(line)
        if not key:
            continue
        if key in props and f"${key}" in value:
            value = value.replace(f"${key}", props[key])
        props[key] = value
    return props


def substitute(value: str, lookup: dict[str, str], env: dict[str, str] | None = None, depth: int = 0) -> str:
    """`${key}` from the configuration, `${env:VAR}` / `${env:VAR:default}` from the environment;
    `$${key}` stays a literal `${key}` (Nuxeo leaves it for the server to resolve);
    unknown keys stay as is."""
    env = os.environ if env is None else env
    if depth > 20 or "$" not in value:
        return value
    marker = "\0ESCAPED\0"
    value = value.replace("$${", marker)

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("env:"):
            var, _, default = name[4:].partition(":")
            return env.get(var, default)
        if name in lookup:
            return substitute(lookup[name], lookup, env, depth + 1)
        return m.group(0)

    value = _SUBST.sub(repl, value)
    return value.replace(marker, "${")


def split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def is_secret(key: str) -> bool:
    k = key.lower()
    return any(h in k for h in SECRET_HINTS)


@dataclass
class NuxeoConfig:
    home: Path
    conf_path: Path
    user: dict[str, str]  # what nuxeo.conf itself sets
    defaults: dict[str, str]  # templates/nuxeo.defaults then each template's nuxeo.defaults
    templates: list[str]  # resolved template names, includes first, in Nuxeo's order
    template_dirs: list[Path]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def raw(self, key: str) -> str | None:
        if key in self.user:
            return self.user[key]
        return self.defaults.get(key)

    def get(self, key: str, default: str = "") -> str:
        value = self.raw(key)
        if value is None:
            return default
        return substitute(value, self.merged(), self.env)

    def merged(self) -> dict[str, str]:
        return {**self.defaults, **self.user}

    def resolved(self) -> dict[str, str]:
        merged = self.merged()
        return {k: substitute(v, merged, self.env) for k, v in merged.items()}

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.get(key).strip()
        return default if value == "" else value.lower() == "true"

    def number(self, key: str, default: float) -> float:
        try:
            return float(self.get(key).strip())
        except ValueError:
            return default

    def path(self, key: str, default: str) -> Path:
        """Relative paths are anchored at NUXEO_HOME, as the launcher does."""
        p = Path(self.get(key) or default)
        return p if p.is_absolute() else self.home / p

    def user_set(self, key: str) -> bool:
        return self.user.get(key, "").strip() != ""

    def has_template(self, prefix: str) -> bool:
        return any(Path(t).name.startswith(prefix) for t in self.templates)


def templates_dir(home: Path) -> Path:
    return home / "templates"


def requested_templates(user: dict[str, str], global_defaults: dict[str, str]) -> list[str]:
    """`nuxeo.templates`, then every `nuxeo.append.templates.<suffix>` value sorted by suffix."""
    names = split_list(user.get("nuxeo.templates") or global_defaults.get("nuxeo.templates", "default"))
    appends = sorted(k for k in user if k.startswith("nuxeo.append.templates."))
    for key in appends:
        for name in split_list(user[key]):
            if name not in names:
                names.append(name)
    return names


def _template_path(home: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else templates_dir(home) / name


def resolve_templates(home: Path, names: list[str]) -> list[tuple[str, Path, dict[str, str]]]:
    """Depth-first: a template's `nuxeo.template.includes` come before it, each template once."""
    seen: set[Path] = set()
    ordered: list[tuple[str, Path, dict[str, str]]] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        path = _template_path(home, name)
        if path in seen:
            return
        if name in chain:
            raise ConfigError(f"template include loop: {' -> '.join((*chain, name))}")
        defaults_file = path / "nuxeo.defaults"
        if not path.is_dir():
            raise ConfigError(f"Template '{name}' not found in {templates_dir(home)}")
        props = parse_properties(defaults_file.read_text()) if defaults_file.is_file() else {}
        includes = props.get("nuxeo.template.includes", "") or props.get("include", "")
        for inc in split_list(includes):
            visit(inc, (*chain, name))
        seen.add(path)
        ordered.append((name, path, props))

    for n in names:
        visit(n, ())
    return ordered


def default_conf_path(home: Path, env: dict[str, str]) -> Path:
    return Path(env["NUXEO_CONF"]) if env.get("NUXEO_CONF") else home / "bin" / "nuxeo.conf"


def load(home: Path, conf_path: Path | None = None, env: dict[str, str] | None = None) -> NuxeoConfig:
    env = dict(os.environ) if env is None else env
    conf_path = conf_path or default_conf_path(home, env)
    try:
        user = parse_properties(conf_path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read {conf_path}: {e.strerror}") from e
    global_file = templates_dir(home) / "nuxeo.defaults"
    global_defaults = parse_properties(global_file.read_text()) if global_file.is_file() else {}
    names = requested_templates(user, global_defaults)
    resolved = resolve_templates(home, names)
    defaults = dict(global_defaults)
    for _, _, props in resolved:
        defaults.update({k: v for k, v in props.items() if k not in ("nuxeo.template.includes", "include")})
    defaults.setdefault("nuxeo.home", str(home))
    defaults["nuxeo.home"] = str(home)
    return NuxeoConfig(
        home=home,
        conf_path=conf_path,
        user=user,
        defaults=defaults,
        templates=[n for n, _, _ in resolved],
        template_dirs=[p for _, p, _ in resolved],
        env=env,
    )


def lts_of(cfg: NuxeoConfig) -> int:
    """The LTS line of this distribution (org.nuxeo.ecm.product.version: 2025.9 -> 2025; 0 when unknown)."""
    head = cfg.get("org.nuxeo.ecm.product.version").split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def search_client_key(cfg: NuxeoConfig) -> str:
    """LTS 2025: the installed search client package's key (template <key>-search-client), '' = none."""
    for name in cfg.templates:
        if Path(name).name.endswith("-search-client"):
            return Path(name).name[: -len("-search-client")]
    return ""


def audit_backend_key(cfg: NuxeoConfig) -> str:
    """LTS 2025: the installed audit package's key (template <key>-audit), '' = the in-memory store."""
    for name in cfg.templates:
        if Path(name).name.endswith("-audit"):
            return Path(name).name[: -len("-audit")]
    return ""


def dead_keys(cfg: NuxeoConfig) -> list[str]:
    """nuxeo.conf keys that LTS 2025 ignores (set by the operator, not by a template default)."""
    return sorted(k for k in cfg.user if k.startswith(DEAD_KEY_PREFIXES_2025) or k == "elasticsearch.enabled")


def _java_major(env: dict[str, str], conf_java_home: str = "") -> tuple[int | None, str]:
    """The major version of the JVM the launcher would run: nuxeo.conf's JAVA_HOME (nuxeoctl reads it first), else
    $JAVA_HOME/bin/java, else `java` on PATH."""
    java_home = conf_java_home or env.get("JAVA_HOME", "")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java", path=env.get("PATH"))
    if not java or not Path(java).exists():
        return None, "no java executable (JAVA_HOME unset and no java on PATH)"
    home = Path(os.path.realpath(java)).parent.parent
    release = home / "release"
    text = ""
    if release.is_file():
        m = re.search(r'^JAVA_VERSION="([^"]+)"', release.read_text(errors="replace"), re.M)
        text = m.group(1) if m else ""
    if not text:
        try:
            out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"{java} -version failed: {e}"
        m = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
        text = m.group(1) if m else ""
    head = text.split(".", 1)[0]
    return (int(head) if head.isdigit() else None), f"{java} ({text or 'unknown version'})"


def refusals(cfg: NuxeoConfig) -> list[str]:
    """Configuration Nuxeo would not start with, plus what the stand-in itself cannot serve."""
    problems: list[str] = []
    lts = lts_of(cfg)
    need = JAVA_BY_LTS.get(lts)
    if need:
        major, what = _java_major(cfg.env, cfg.user.get("JAVA_HOME", ""))
        if major is None or major < need:
            problems.append(f"Nuxeo {lts} needs Java {need}: the JVM found is {what}")
    db_type = cfg.get("nuxeo.db.type")
    if cfg.has_template("postgresql") or db_type == "postgresql":
        missing = [k for k in SQL_REQUIRED_KEYS if not cfg.user_set(k)]
        if missing:
            problems.append(
                "database template postgresql is enabled but nuxeo.conf does not set " + ", ".join(missing)
            )
    elif cfg.has_template(DB_TEMPLATE_MONGO) or db_type == "mongodb":
        if not cfg.user_set("nuxeo.mongodb.server"):
            problems.append(
                "database template mongodb is enabled but nuxeo.conf does not set nuxeo.mongodb.server"
            )
    else:
        problems.append(
            f"database type '{db_type or 'default'}' (embedded H2) is not available in the stand-in: "
            "add the postgresql, postgresql-quartz-cluster or mongodb template"
        )
    s3 = cfg.has_template("s3binaries")
    if s3 and not cfg.get("nuxeo.s3storage.bucket").strip():
        problems.append("template s3binaries is enabled but nuxeo.s3storage.bucket is empty")
    cluster = cfg.flag("nuxeo.cluster.enabled") or cfg.flag("repository.clustering.enabled")
    if cluster and not s3 and not cfg.user_set("nuxeo.binarystores.root"):
        problems.append(
            "nuxeo.cluster.enabled=true needs a shared binary store: install amazon-s3-online-storage "
            "(template s3binaries) or set nuxeo.binarystores.root to a shared mount"
        )
    if lts >= 2025:
        problems.extend(_refusals_2025(cfg, cluster))
    elif cfg.flag("elasticsearch.enabled", True) and not split_list(cfg.get("elasticsearch.addressList")):
        problems.append(
            "elasticsearch.addressList is empty: the embedded Elasticsearch is not available in the stand-in"
        )
    if not cfg.get("nuxeo.server.http.port").strip().isdigit():
        problems.append(f"nuxeo.server.http.port is not a port number: {cfg.get('nuxeo.server.http.port')!r}")
    return problems


def _refusals_2025(cfg: NuxeoConfig, cluster: bool) -> list[str]:
    problems: list[str] = []
    client = search_client_key(cfg)
    if client and not split_list(cfg.get(f"nuxeo.{client}.client.server")):
        problems.append(f"search client {client} is installed but nuxeo.{client}.client.server is empty")
    audit = audit_backend_key(cfg)
    if cluster and not audit:
        problems.append(
            "nuxeo.cluster.enabled=true without an audit backend package: the default audit store is in memory "
            "(testing purpose only) and each node would keep its own; install nuxeo-audit-<backend>"
        )
    if audit and audit != client:
        problems.append(f"audit package {audit} stores in the search cluster through search client {audit}, "
                        f"which is not installed (installed: {client or 'none'}): the stand-in has no other store")
    return problems


def set_in_conf(conf_path: Path, key: str, value: str | None) -> None:
    """Rewrite the active line for `key` in place (or append it); value None comments it out.
    Comments and order are kept so operators can still diff the file."""
    lines = conf_path.read_text().splitlines() if conf_path.exists() else []
    out: list[str] = []
    done = False
    for line in lines:
        stripped = line.lstrip()
        if stripped and stripped[0] not in "#!":
            k, _ = _split_key_value(stripped)
            if k == key:
                if not done and value is not None:
                    out.append(f"{key}={value}")
                    done = True
                elif value is None:
                    out.append(f"#{line}")
                continue
        out.append(line)
    if not done and value is not None:
        out.append(f"{key}={value}")
    conf_path.write_text("\n".join(out) + "\n")

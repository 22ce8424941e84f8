"""A subset of NXQL, parsed and turned into an OpenSearch query, as Nuxeo's Elasticsearch page
providers do. Covers SELECT * FROM <types> [WHERE ...] [ORDER BY ...] with =, <>, !=, <, <=, >, >=,
[NOT] IN, [NOT] LIKE / ILIKE, IS [NOT] NULL, STARTSWITH, BETWEEN, AND / OR / NOT, parentheses and
`ecm:fulltext` (also `ecm:fulltext.<field>`). Stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

FULLTEXT_FIELD = "ecm:fulltext"
# NXQL names whose index field differs
FIELD_ALIASES = {"ecm:id": "ecm:uuid", "ecm:uuid": "ecm:uuid", "ecm:title": "dc:title"}
# NXQL has no boolean literal: 0/1 stand for false/true on these fields
BOOLEAN_FIELDS = {"ecm:isTrashed", "ecm:isVersion", "ecm:isProxy", "ecm:isCheckedIn", "ecm:isLatestVersion"}
ALL_TYPES = {"Document", "Relation"}


class NXQLError(ValueError):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.|'')*')
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><>|!=|<=|>=|=|<|>)
    | (?P<punct>[(),*])
    | (?P<name>[A-Za-z_][\w:.\-/]*)
    )""",
    re.VERBOSE,
)
KEYWORDS = {
    "SELECT", "FROM", "WHERE", "ORDER", "BY", "ASC", "DESC", "AND", "OR", "NOT", "IN", "LIKE",
    "ILIKE", "IS", "NULL", "STARTSWITH", "BETWEEN", "DATE", "TIMESTAMP",
}  # fmt: skip


@dataclass
class Token:
    kind: str  # string number op punct name kw end
    value: Any


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise NXQLError(f"unexpected character at {pos}: {text[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        raw = m.group(kind)
        if kind == "string":
            body = raw[1:-1].replace("''", "'")
            body = re.sub(r"\\(.)", r"\1", body)
            tokens.append(Token("string", body))
        elif kind == "number":
            tokens.append(Token("number", float(raw) if "." in raw else int(raw)))
        elif kind == "name" and raw.upper() in KEYWORDS:
            tokens.append(Token("kw", raw.upper()))
        else:
            tokens.append(Token(kind, raw))
    tokens.append(Token("end", None))
    return tokens


@dataclass
class Query:
    select: list[str]
    types: list[str]
    where: dict[str, Any] | None
    order_by: list[tuple[str, str]] = field(default_factory=list)

    def to_search(self) -> dict[str, Any]:
        """The OpenSearch `query` object (type filter and WHERE clause)."""
        filters: list[dict[str, Any]] = []
        concrete = [t for t in self.types if t not in ALL_TYPES]
        if concrete:
            filters.append({"terms": {"ecm:primaryType": concrete}})
        if self.where is not None:
            filters.append(self.where)
        if not filters:
            return {"match_all": {}}
        if len(filters) == 1:
            return filters[0]
        return {"bool": {"must": filters}}

    def sort(self) -> list[dict[str, Any]]:
        return [{_field(f): {"order": d.lower()}} for f, d in self.order_by]


def _field(name: str) -> str:
    return FIELD_ALIASES.get(name, name)


def _value(name: str, v: Any) -> Any:
    if _field(name) in BOOLEAN_FIELDS and isinstance(v, int):
        return bool(v)
    return v


def _like_to_wildcard(pattern: str) -> str:
    out = []
    escaped = False
    for c in pattern:
        if escaped:
            out.append("\\" + c if c in "*?" else c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == "%":
            out.append("*")
        elif c == "_":
            out.append("?")
        elif c in "*?":
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def _not(q: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"must_not": [q]}}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def accept_kw(self, *words: str) -> bool:
        t = self.peek()
        if t.kind == "kw" and t.value in words:
            self.i += 1
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.accept_kw(word):
            raise NXQLError(f"expected {word}, got {self.peek().value!r}")

    def expect_punct(self, p: str) -> None:
        t = self.next()
        if t.kind != "punct" or t.value != p:
            raise NXQLError(f"expected {p!r}, got {t.value!r}")

    def name(self) -> str:
        t = self.next()
        if t.kind != "name":
            raise NXQLError(f"expected a property name, got {t.value!r}")
        return t.value

    def parse(self) -> Query:
        self.expect_kw("SELECT")
        select: list[str] = []
        while True:
            t = self.next()
            if t.kind == "punct" and t.value == "*":
                select.append("*")
            elif t.kind == "name":
                select.append(t.value)
            else:
                raise NXQLError(f"bad select list at {t.value!r}")
            if not (self.peek().kind == "punct" and self.peek().value == ","):
                break
            self.next()
        self.expect_kw("FROM")
        types = [self.name()]
        while self.peek().kind == "punct" and self.peek().value == ",":
            self.next()
            types.append(self.name())
        where = None
        if self.accept_kw("WHERE"):
            where = self.or_expr()
        order: list[tuple[str, str]] = []
        if self.accept_kw("ORDER"):
            self.expect_kw("BY")
            while True:
                f = self.name()
                direction = "DESC" if self.accept_kw("DESC") else "ASC"
                self.accept_kw("ASC")
                order.append((f, direction))
                if not (self.peek().kind == "punct" and self.peek().value == ","):
                    break
                self.next()
        if self.peek().kind != "end":
            raise NXQLError(f"unexpected {self.peek().value!r} after the query")
        return Query(select, types, where, order)

    def or_expr(self) -> dict[str, Any]:
        parts = [self.and_expr()]
        while self.accept_kw("OR"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else {"bool": {"should": parts, "minimum_should_match": 1}}

    def and_expr(self) -> dict[str, Any]:
        parts = [self.not_expr()]
        while self.accept_kw("AND"):
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else {"bool": {"must": parts}}

    def not_expr(self) -> dict[str, Any]:
        if self.accept_kw("NOT"):
            return _not(self.not_expr())
        t = self.peek()
        if t.kind == "punct" and t.value == "(":
            self.next()
            q = self.or_expr()
            self.expect_punct(")")
            return q
        return self.predicate()

    def literal(self) -> Any:
        t = self.next()
        if t.kind == "kw" and t.value in ("DATE", "TIMESTAMP"):
            t = self.next()
            if t.kind != "string":
                raise NXQLError("DATE/TIMESTAMP needs a quoted value")
            return t.value.replace(" ", "T", 1) if "T" not in t.value else t.value
        if t.kind in ("string", "number"):
            return t.value
        raise NXQLError(f"expected a value, got {t.value!r}")

    def predicate(self) -> dict[str, Any]:
        name = self.name()
        fld = _field(name)
        negate = self.accept_kw("NOT")
        t = self.peek()
        if fld == FULLTEXT_FIELD or fld.startswith(FULLTEXT_FIELD + "."):
            if negate or not (t.kind == "op" and t.value == "="):
                raise NXQLError(f"{name} only supports '='")
            self.next()
            text = self.literal()
            target = fld[len(FULLTEXT_FIELD) + 1 :] or FULLTEXT_FIELD
            if target != FULLTEXT_FIELD:
                target += ".fulltext"
            return {
                "simple_query_string": {"query": str(text), "fields": [target], "default_operator": "and"}
            }
        if t.kind == "op" and not negate:
            op = self.next().value
            v = _value(name, self.literal())
            if op == "=":
                return {"term": {fld: v}}
            if op in ("!=", "<>"):
                return _not({"term": {fld: v}})
            key = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[op]
            return {"range": {fld: {key: v}}}
        if self.accept_kw("IN"):
            self.expect_punct("(")
            values = [_value(name, self.literal())]
            while self.peek().kind == "punct" and self.peek().value == ",":
                self.next()
                values.append(_value(name, self.literal()))
            self.expect_punct(")")
            q: dict[str, Any] = {"terms": {fld: values}}
            return _not(q) if negate else q
        if self.accept_kw("LIKE", "ILIKE"):
            insensitive = self.tokens[self.i - 1].value == "ILIKE"
            pattern = _like_to_wildcard(str(self.literal()))
            q = {"wildcard": {fld: {"value": pattern, "case_insensitive": insensitive}}}
            return _not(q) if negate else q
        if self.accept_kw("BETWEEN"):
            low = _value(name, self.literal())
            self.expect_kw("AND")
            high = _value(name, self.literal())
            q = {"range": {fld: {"gte": low, "lte": high}}}
            return _not(q) if negate else q
        if self.accept_kw("STARTSWITH"):
            prefix = str(self.literal()).rstrip("/")
            # like Nuxeo: descendants only, the document at the path itself does not match
            q = {"prefix": {fld: prefix + "/"}}
            return _not(q) if negate else q
        if not negate and self.accept_kw("IS"):
            not_null = self.accept_kw("NOT")
            self.expect_kw("NULL")
            q = {"exists": {"field": fld}}
            return q if not_null else _not(q)
        raise NXQLError(f"unsupported condition after {name!r}: {t.value!r}")


def parse(text: str) -> Query:
    return _Parser(text).parse()

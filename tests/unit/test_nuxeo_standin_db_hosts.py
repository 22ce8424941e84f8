"""The Nuxeo stand-in's multi-host database connections: pgjdbc's host status tracking (hostRecheckSeconds)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from nxprovision_lab.standins.nuxeo.runtime.repository import PostgresRepository


class FakeError(Exception):
    pass


def fake_psycopg(behaviour: dict[str, str], tried: list[str]) -> types.ModuleType:
    """A psycopg whose connect() answers per host: 'ok', 'standby' (read-only session) or 'down' (timeout)."""

    def connect(**kw: Any) -> object:
        host = kw["host"]
        tried.append(host)
        what = behaviour[host]
        if what == "standby":
            raise FakeError(f'connection to server at "{host}", port 5432 failed: session is read-only')
        if what == "down":
            raise FakeError(f'connection to server at "{host}", port 5432 failed: timeout expired')
        return types.SimpleNamespace(host=host, closed=False)

    mod = types.ModuleType("psycopg")
    mod.connect = connect  # type: ignore[attr-defined]
    mod.OperationalError = FakeError  # type: ignore[attr-defined]
    mod.InterfaceError = FakeError  # type: ignore[attr-defined]
    return mod


def test_a_host_that_failed_is_tried_last_until_the_recheck_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    behaviour = {"db1": "down", "db2": "standby", "db3": "ok"}
    tried: list[str] = []
    monkeypatch.setitem(sys.modules, "psycopg", fake_psycopg(behaviour, tried))
    ports: Any = "5432,5432,5432"  # libpq's list form, as the stand-in builds it from the JDBC URL
    repo = PostgresRepository(
        "db1,db2,db3", ports, "nuxeo", "u", "p", conn_extra={"target_session_attrs": "read-write"}
    )
    assert repo._connect().host == "db3"
    assert tried == ["db1", "db2", "db3"]
    tried.clear()
    # db1 (down) and db2 (a standby) are known: the primary first, the standby next, the dead host last
    assert repo._connect().host == "db3"
    assert tried == ["db3"]
    # after a failover db2 is the primary and db3 a standby: the dead host is still not tried first
    behaviour.update(db2="ok", db3="standby")
    tried.clear()
    assert repo._connect().host == "db2"
    assert tried == ["db3", "db2"]
    # once the recheck delay has passed, the URL's order again
    repo._host_status = {h: (r, when - repo.HOST_RECHECK_S) for h, (r, when) in repo._host_status.items()}
    behaviour.update(db1="ok")
    tried.clear()
    assert repo._connect().host == "db1"


def test_every_host_failing_raises_one_error_naming_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", fake_psycopg({"a": "down", "b": "standby"}, []))
    ports: Any = "5432"
    repo = PostgresRepository("a,b", ports, "nuxeo", "u", "p")
    with pytest.raises(FakeError) as e:
        repo._connect()
    assert '"a"' in str(e.value) and '"b"' in str(e.value)

#!/usr/bin/python
"""Read a MongoDB replica set's state, step its primary down, or take a member out of its configuration.

Runs on a member of the set with the host's pymongo (the mongodb role installs python3-pymongo). It asks the local
mongod who the primary is (`isMaster` needs no login) and sends every other command to that primary, logged in as
the administrator: a secondary may not hold the users yet, and only the primary takes a new configuration.
community.mongodb's replica-set module reconfigures only as an experimental feature that validates the member count
of the new set against an initiation's rules (odd, at least 3), and has no wait for the member to leave the status:
removal is a two-command sequence with waits, kept here.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_mongodb_replset
short_description: State of a MongoDB replica set, step-down of its primary, removal of a member
description:
  - O(action=state) reads the set (read-only) from its primary, as the local member names it.
  - O(action=step_down) steps O(member) down when it is the primary (replSetStepDown), then waits until another
    member is primary.
  - O(action=remove) takes O(member) out of the configuration (replSetReconfig on the primary, version + 1), then
    waits until replSetGetStatus no longer lists it. The primary itself is refused: step it down first.
options:
  action:
    description: What to do.
    type: str
    choices: [state, step_down, remove]
    required: true
  member:
    description: The member (host:port as the configuration names it), for step_down and remove.
    type: str
  port:
    description: Port of the local mongod.
    type: int
    default: 27017
  login_user:
    description: Administrator to log in as on the primary (none when access control is off).
    type: str
  login_password:
    description: Its password.
    type: str
  login_database:
    description: Database the administrator is defined in.
    type: str
    default: admin
  timeout:
    description: Seconds to wait for a new primary, or for the member to leave the status.
    type: int
    default: 120
author: nxprovision
"""

EXAMPLES = r"""
- name: Take mongo3 out of the set
  nx_mongodb_replset:
    action: remove
    member: 10.0.0.3:27017
    login_user: admin
    login_password: "{{ nx_secret_db_admin_password }}"
  no_log: true
"""

RETURN = r"""
set:
  description: The set's name.
  type: str
  returned: always
primary:
  description: The primary (host:port), '' when the set has none.
  type: str
  returned: always
members:
  description: Each member of the configuration with name, health, state, stateStr, votes (state only).
  type: list
  returned: always
version:
  description: The configuration's version.
  type: int
  returned: always
error:
  description: Why the action failed, '' when it did not (also on failure, for tasks run under no_log).
  type: str
  returned: always
"""

import contextlib
import time
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule


class CommandError(Exception):
    """A command a member answered with ok: 0 (its reply in `details`)."""

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__(str(details.get("errmsg") or details))
        self.details = details


class Unreachable(Exception):
    """The member could not be reached, or closed the connection (as mongod before 4.2 did on a step-down)."""


# (host, port, log in?) -> run one admin command there; raises CommandError or Unreachable
Connect = Callable[[str, int, bool], Callable[[dict[str, Any]], dict[str, Any]]]


def _split(member: str) -> tuple[str, int]:
    host, port = member.rsplit(":", 1)
    return host, int(port)


def local_primary(connect: Connect, port: int) -> tuple[dict[str, Any], str]:
    hello = connect("127.0.0.1", port, False)({"isMaster": 1})
    return hello, str(hello.get("primary") or "")


def state(connect: Connect, port: int) -> dict[str, Any]:
    hello, primary = local_primary(connect, port)
    out: dict[str, Any] = {"set": str(hello.get("setName") or ""), "primary": primary, "asked": str(hello.get("me")
                           or f"127.0.0.1:{port}"), "version": int(hello.get("setVersion") or 0),
                           "members": [{"name": h} for h in hello.get("hosts") or []]}
    if not primary:
        return out
    run = connect(*_split(primary), True)
    try:
        status = run({"replSetGetStatus": 1})
        config = run({"replSetGetConfig": 1})["config"]
    except Unreachable:
        # the member still names a primary it has just lost: the set has none until it elects one
        out["primary"] = ""
        return out
    votes = {str(m["host"]): int(m.get("votes", 1)) for m in config.get("members", [])}
    out.update(set=str(config.get("_id") or out["set"]), version=int(config.get("version") or 0), asked=primary,
               members=[{"name": str(m.get("name")), "health": float(m.get("health") or 0),
                         "state": int(m.get("state") or 0), "stateStr": str(m.get("stateStr") or ""),
                         "votes": votes.get(str(m.get("name")), 1)} for m in status.get("members", [])])
    # a primary that lost its majority keeps the state until it notices: only a PRIMARY it lists itself is one
    if not any(m["name"] == primary and m["stateStr"] == "PRIMARY" for m in out["members"]):
        out["primary"] = ""
    return out


def wait(what: Callable[[], bool], timeout: int, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> bool:
    end = clock() + timeout
    while True:
        try:
            if what():
                return True
        except (CommandError, Unreachable):
            pass
        if clock() >= end:
            return False
        sleep(2)


def step_down(connect: Connect, port: int, member: str, timeout: int, check_mode: bool = False,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    _hello, primary = local_primary(connect, port)
    if primary != member:
        return {"changed": False, "primary": primary}
    if check_mode:
        return {"changed": True, "primary": primary}
    # mongod before 4.2 closes every connection as it steps down
    with contextlib.suppress(Unreachable):
        # seconds it may not run for primary again; secondaries get that long to catch up first
        connect(*_split(member), True)({"replSetStepDown": 60, "secondaryCatchUpPeriodSecs": 30})
    found: dict[str, str] = {}

    def elected() -> bool:
        found["primary"] = local_primary(connect, port)[1]
        return found["primary"] not in ("", member)

    if not wait(elected, timeout, sleep):
        raise CommandError({"errmsg": f"{member} stepped down but no other member became primary within "
                                      f"{timeout} s (last seen primary: {found.get('primary') or 'none'})"})
    return {"changed": True, "primary": found["primary"]}


def remove(connect: Connect, port: int, member: str, timeout: int, check_mode: bool = False,
           sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    _hello, primary = local_primary(connect, port)
    if not primary:
        raise CommandError({"errmsg": "the set has no primary: no new configuration can be made"})
    if primary == member:
        raise CommandError({"errmsg": f"{member} is the primary: step it down first"})
    run = connect(*_split(primary), True)
    config = run({"replSetGetConfig": 1})["config"]
    if member not in [str(m["host"]) for m in config.get("members", [])]:
        return {"changed": False, "primary": primary, "version": int(config.get("version") or 0)}
    new = dict(config)
    new["members"] = [m for m in config["members"] if str(m["host"]) != member]
    new["version"] = int(config["version"]) + 1
    if check_mode:
        return {"changed": True, "primary": primary, "version": new["version"]}
    run({"replSetReconfig": new})

    def gone() -> bool:
        return member not in [str(m.get("name")) for m in run({"replSetGetStatus": 1}).get("members", [])]

    if not wait(gone, timeout, sleep):
        raise CommandError({"errmsg": f"the configuration without {member} was accepted, but the primary {primary} "
                                      f"still lists it after {timeout} s"})
    return {"changed": True, "primary": primary, "version": new["version"]}


def pymongo_connect(user: str | None, password: str | None, database: str) -> Connect:
    import pymongo
    from pymongo.errors import AutoReconnect, ConnectionFailure, OperationFailure

    def connect(host: str, port: int, login: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        kwargs: dict[str, Any] = {"directConnection": True, "serverSelectionTimeoutMS": 10000}
        if login and user:
            kwargs.update(username=user, password=password, authSource=database)

        def run(doc: dict[str, Any]) -> dict[str, Any]:
            client = pymongo.MongoClient(host, port, **kwargs)
            try:
                return dict(client.admin.command(doc))
            except OperationFailure as e:
                raise CommandError(dict(e.details or {"errmsg": str(e)})) from None
            except (AutoReconnect, ConnectionFailure) as e:
                raise Unreachable(f"{host}:{port}: {e}") from None
            finally:
                client.close()

        return run

    return connect


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "required": True, "choices": ["state", "step_down", "remove"]},
            "member": {"type": "str"},
            "port": {"type": "int", "default": 27017},
            "login_user": {"type": "str"},
            "login_password": {"type": "str", "no_log": True},
            "login_database": {"type": "str", "default": "admin"},
            "timeout": {"type": "int", "default": 120},
        },
        required_if=[("action", "step_down", ["member"]), ("action", "remove", ["member"])],
        supports_check_mode=True,
    )
    p = module.params
    # `error` rides in every answer, failures included: the hooks run these tasks under no_log, which hides a
    # failure's message, and show `error` in the assert that follows (failed_when: false resets `failed` itself)
    try:
        connect = pymongo_connect(p["login_user"], p["login_password"], p["login_database"])
    except ImportError:
        msg = "pymongo is missing on this host (the mongodb role installs python3-pymongo)"
        module.fail_json(msg=msg, error=msg)
    try:
        if p["action"] == "state":
            module.exit_json(changed=False, error="", **state(connect, p["port"]))
        do = step_down if p["action"] == "step_down" else remove
        module.exit_json(error="", **do(connect, p["port"], p["member"], p["timeout"], module.check_mode))
    except CommandError as e:
        msg = f"{p['action']} {p['member'] or ''}: {e}".replace("  ", " ")
        module.fail_json(msg=msg, error=msg, code=e.details.get("code"), codeName=e.details.get("codeName"))
    except Unreachable as e:
        msg = f"{p['action']}: a member did not answer: {e}"
        module.fail_json(msg=msg, error=msg)

if __name__ == "__main__":
    main()

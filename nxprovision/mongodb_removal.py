"""Taking a member out of a MongoDB replica set the way MongoDB needs it (remove-node, issue 15).

Decides, from what the set says of itself (the nx_mongodb_replset module's `state`: its primary, and each member's
health and votes from replSetGetStatus and replSetGetConfig), whether a member may leave: the set must have a
primary (only a primary takes a new configuration), and the voting members left must still elect one: a majority
of the NEW configuration's voters healthy now. Pure functions: the nx_mongodb_removal action plugin calls them on
the controller.
"""

from __future__ import annotations

from typing import Any

FIX_BACK = "bring the members back (nxprovision status shows each one's state), then run this again"


def voters(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The voting members (votes defaults to 1, as in mongod)."""
    return [m for m in members if int(m.get("votes", 1) or 0) > 0]


def healthy(member: dict[str, Any]) -> bool:
    """Up and able to vote for a primary: PRIMARY or SECONDARY (a member recovering or starting up cannot)."""
    return bool(member.get("health")) and member.get("stateStr") in ("PRIMARY", "SECONDARY")


def refusal(state: dict[str, Any], leaving: str, unreachable: bool) -> str:
    """Why the member LEAVING (host:port as in the set's configuration) may not go, or ''. Never lifted by --force:
    each case leaves the set without a primary.

    - the set has no primary: no reconfiguration can be made (and none should be forced from here);
    - LEAVING is the last member;
    - the voting members left would not hold a healthy majority of themselves, so no primary could be elected;
    - LEAVING is the primary but the run was told it is unreachable (the set sees it up: it is not dead).
    A member the configuration no longer lists is no refusal: a second run has nothing to do.
    """
    name = state.get("set") or "the replica set"
    asked = state.get("asked") or "a surviving member"
    members: list[dict[str, Any]] = list(state.get("members") or [])
    hosts = [str(m.get("name")) for m in members]
    if not state.get("primary"):
        return (f"{name} has no primary (asked of {asked}), and only a primary takes a new configuration. "
                f"Fix: {FIX_BACK}")
    if leaving not in hosts:
        return ""
    if hosts == [leaving]:
        return f"{leaving} is the last member of {name}: it holds the only copy of the data"
    if state["primary"] == leaving and unreachable:
        return (f"{leaving} is the primary of {name} and answers the other members, yet --unreachable says it is "
                "dead. Fix: run this without --unreachable (it steps down first)")
    left = voters([m for m in members if m.get("name") != leaving])
    up = [str(m["name"]) for m in left if healthy(m)]
    need = len(left) // 2 + 1
    if len(up) < need:
        down = [f"{m['name']} ({m.get('stateStr') or 'not answering'})" for m in left if not healthy(m)]
        return (f"without {leaving}, {name} would keep {len(left)} voting member(s), of which {len(up)} healthy "
                f"({', '.join(up) or 'none'}); electing a primary needs {need}. Unhealthy now: "
                f"{', '.join(down) or 'none'}. Fix: {FIX_BACK}")
    return ""

"""One pipeline for every verb that changes hosts (issue 17): lock, validate, guards, then the verb. No verb takes
the lock, validates for a change or applies a guard on its own, so none can forget one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_PARTS = {"exclusive", "refuse_pending_rotation", "refuse_removed_hosts"}
CHANGING = {"cmd_deploy", "cmd_reindex", "cmd_restart", "cmd_add_node", "cmd_remove_node", "cmd_upgrade",
            "cmd_backup", "_restore", "cmd_secrets_rotate", "cmd_renew"}


def _functions(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _called(fn: ast.AST) -> set[str]:
    return {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def test_only_the_pipeline_takes_the_lock_and_applies_the_guards() -> None:
    for f in (ROOT / "nxprovision" / "commands.py", ROOT / "nxprovision" / "certs.py"):
        for name, fn in _functions(f).items():
            if name in ("changing_verb", "refuse_pending_rotation", "refuse_removed_hosts"):
                continue
            assert not (_called(fn) & PIPELINE_PARTS), f"{f.name}: {name} applies part of the pipeline itself"


def test_every_changing_verb_goes_through_it() -> None:
    funcs = {**_functions(ROOT / "nxprovision" / "commands.py"), **_functions(ROOT / "nxprovision" / "certs.py")}
    piped = {name for name, fn in funcs.items()
             if any(isinstance(d, ast.Call) and getattr(d.func, "id", "") == "changing_verb"
                    for d in fn.decorator_list)}
    assert piped == CHANGING
    for name in piped:
        assert [a.arg for a in funcs[name].args.args] == ["args", "prepared"], name

"""Live progress of a run: a rich panel on a terminal, plain lines elsewhere, JSON lines for machines."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from nxprovision.drift import changed as changed_result
from nxprovision.runevents import (
    Masker,
    PlainDisplay,
    report_line,
    result_message,
    shown_diff,
    unreachable_cause,
    warning_lines,
)


@dataclass
class HostLine:
    task: str = ""
    role: str = ""
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: bool = False


@dataclass
class RunState:
    plays_total: int
    plays_done: int = 0
    play: str = ""
    hosts: dict[str, HostLine] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    failures: list[str] = field(default_factory=list)

    def apply(self, event: dict[str, Any], mask: Masker) -> None:
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        host = data.get("host")
        if kind == "playbook_on_play_start":
            if self.play:
                self.plays_done += 1
            self.play = str(data.get("play", ""))
        elif kind == "runner_on_start" and host:
            line = self.hosts.setdefault(host, HostLine())
            line.task, line.role = str(data.get("task", "")), str(data.get("role") or "")
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable") and host:
            line = self.hosts.setdefault(host, HostLine())
            if kind == "runner_on_ok":
                line.ok += 1
                line.changed += 1 if changed_result(event) else 0
            elif kind == "runner_on_failed" and not data.get("ignore_errors"):
                line.failed += 1
                # the runner's reading of the result: a checksum mismatch names the URL and both sums in full
                self.failures.append(mask(f"{host}: {data.get('task')}: {result_message(data)}")[:600])
            elif kind == "runner_on_unreachable":
                line.unreachable = True
                # one line: a refused host key says which key, not SSH's banner cut at its first characters
                self.failures.append(mask(f"{host}: unreachable: {unreachable_cause(result_message(data))}")[:600])
        elif kind == "playbook_on_stats":
            self.plays_done = self.plays_total


class RichDisplay:
    """A live table: a progress bar over the plays, then per host its role, task and counts."""

    def __init__(self, plays_total: int, mask: Masker, out: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.mask = mask
        self.state = RunState(plays_total=max(1, plays_total))
        self.console = Console(file=out or sys.stdout)
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)

    def __enter__(self) -> RichDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._render())
        self.live.__exit__(None, None, None)

    def __call__(self, event: dict[str, Any]) -> None:
        self.state.apply(event, self.mask)
        for line in warning_lines(event):
            self.console.print(self.mask(line), markup=False, highlight=False, soft_wrap=True, style="yellow")
        report = report_line(event)
        if report:
            self.console.print(self.mask(report), markup=False, highlight=False, soft_wrap=True)
        text = shown_diff(event)
        if text:
            # printed above the live panel, which keeps redrawing below
            data = event.get("event_data") or {}
            role = f"{data.get('role')} : " if data.get("role") else ""
            self.console.print(self.mask(f"changed  {data.get('host')}  {role}{data.get('task', '')}\n{text}"),
                               markup=False, highlight=False, soft_wrap=True)
        self.live.update(self._render())

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        s = self.state
        elapsed = time.monotonic() - s.started
        head = Text(f"{s.plays_done}/{s.plays_total} plays  {elapsed:5.0f}s  {s.play}", style="bold")
        bar = ProgressBar(total=s.plays_total, completed=s.plays_done, width=60)
        table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
        host_w = max((len(h) for h in s.hosts), default=4)
        table.add_column("host", no_wrap=True, min_width=host_w)
        table.add_column("role", no_wrap=True, min_width=10)
        table.add_column("task", no_wrap=True, overflow="ellipsis", ratio=1)
        for col in ("ok", "changed", "failed"):
            table.add_column(col, no_wrap=True, justify="right")
        for host in sorted(s.hosts):
            h = s.hosts[host]
            style = "red" if h.failed or h.unreachable else ("yellow" if h.changed else "")
            table.add_row(host, h.role, "UNREACHABLE" if h.unreachable else self.mask(h.task), str(h.ok),
                          str(h.changed), str(h.failed), style=style)
        parts: list[Any] = [head, bar, table]
        for f in s.failures[-3:]:
            parts.append(Text(f, style="red"))
        return Group(*parts)


def make_display(mode: str, plays_total: int, mask: Masker, out: TextIO | None = None,
                 ) -> tuple[Callable[[dict[str, Any]], None], Any]:
    """mode: auto | rich | plain | json. Returns (event callback, context manager or None)."""
    out = out or sys.stdout
    if mode == "auto":
        mode = "rich" if out.isatty() else "plain"
    if mode == "rich":
        d = RichDisplay(plays_total, mask, out)
        return d, d
    return PlainDisplay(out, mask, json_lines=(mode == "json")), None

"""Errors that reach an operator as one readable line (never a traceback)."""

from __future__ import annotations


class NxError(Exception):
    """An operator-facing failure: what went wrong and how to fix it."""

    def __init__(self, message: str, fix: str | None = None, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message

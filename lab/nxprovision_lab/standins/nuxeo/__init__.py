"""Nuxeo server stand-in: the distribution/package builders (layout) and the runtime copied into it."""

from .layout import PYTHON_DEPS, package_names, write_distribution, write_package

__all__ = ["PYTHON_DEPS", "package_names", "write_distribution", "write_package"]

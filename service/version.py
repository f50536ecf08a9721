"""The server's version, without importing the client or any dependency.

The version is defined once, as the client's ``layerserve.__version__``, which pyproject reads
into the distribution's metadata; the server (which never imports the client) reads it there.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["installed_version"]


def installed_version() -> str:
    try:
        return version("layerserve")
    except PackageNotFoundError:  # not installed: running from an unpacked source tree
        return "unknown"

"""pycognito's SRP arithmetic (``pycognito.aws_srp``) without importing the ``pycognito`` package.

``import pycognito.aws_srp`` runs ``pycognito/__init__.py`` first, which imports PyJWT, and PyJWT
imports ``cryptography.x509``: ~45 ms and tens of thousands of objects a cold task start paid for
token verification this package never does. Only ``aws_srp.py`` (and its ``exceptions.py``) are
needed, so they are loaded from pycognito's own files under a private package name: the code is
pycognito's, unchanged, and an ``import pycognito`` elsewhere still gets the real package. When
the real ``pycognito.aws_srp`` is already imported, that one is used.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from typing import TYPE_CHECKING, Any

_PRIVATE = "_airflow_cognito_iam_pycognito"
_LOCK = threading.Lock()

if TYPE_CHECKING:
    from pycognito.aws_srp import AWSSRP as AWSSRP
    from pycognito.aws_srp import generate_hash_device as generate_hash_device
    from pycognito.aws_srp import long_to_hex as long_to_hex


def aws_srp() -> types.ModuleType:
    """pycognito's ``aws_srp`` module, loaded without ``pycognito/__init__.py``."""
    loaded = sys.modules.get("pycognito.aws_srp") or sys.modules.get(f"{_PRIVATE}.aws_srp")
    if loaded is not None:
        return loaded
    with _LOCK:
        loaded = sys.modules.get(f"{_PRIVATE}.aws_srp")
        if loaded is not None:
            return loaded
        spec = importlib.util.find_spec("pycognito")  # finds the package; does not run its __init__
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("pycognito is not installed")
        package = types.ModuleType(_PRIVATE)
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules[_PRIVATE] = package
        try:
            module = importlib.import_module(f"{_PRIVATE}.aws_srp")  # its "from .exceptions" stays private too
        except BaseException:
            sys.modules.pop(_PRIVATE, None)
            raise
        return module


def __getattr__(name: str) -> Any:
    """``AWSSRP``, ``generate_hash_device``, ``long_to_hex`` (and the rest of aws_srp) on first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(aws_srp(), name)

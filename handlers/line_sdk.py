"""line-bot-sdk 3, imported by the parts the bot uses (import this module before any `linebot` one).

The SDK's package `__init__`s import everything they offer: `linebot.v3.messaging` its ~200
pydantic (v1) models and both API classes (sync and async) with the 140 argument-checking models
of each, `linebot.v3.webhooks` its ~60 event models, `linebot` the legacy v2 SDK (with
`requests`). That is about 60 MiB and 0.7 s at start for a bot that calls six endpoints.

Installed here, a finder gives those packages a module whose names are the ones their
`__init__` imports, each imported on first access (`from linebot.v3.messaging import X` imports
X's own module and what it needs, and the SDK's own lookups by name, e.g. the deserializer's
`getattr(linebot.v3.messaging.models, klass)`, work the same). A package whose `__init__`
does anything but import names is loaded as usual. In the async API modules, pydantic's
`validate_arguments` builds its checking model on a method's first call instead of at class
definition; the checks are the same.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType

# Packages whose __init__ only re-exports names from their submodules.
LAZY_PACKAGES = frozenset({
    "linebot",
    "linebot.v3",
    "linebot.v3.messaging",
    "linebot.v3.messaging.api",
    "linebot.v3.messaging.models",
    "linebot.v3.webhooks",
    "linebot.v3.webhooks.models",
    "linebot.v3.models",
})
# Modules whose methods are decorated with pydantic.v1's validate_arguments at class definition.
LAZY_CHECKS = frozenset({
    "linebot.v3.messaging.api.async_messaging_api",
    "linebot.v3.messaging.api.async_messaging_api_blob",
})


def _exports(module_name: str, origin: str) -> dict[str, tuple[str, str]] | None:
    """name -> (module, attribute) for an __init__ made of imports only (None otherwise)."""
    with open(origin, encoding="utf-8") as f:
        tree = ast.parse(f.read(), origin)
    table: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module is not None and all(a.name != "*" for a in node.names):
            base = importlib.util.resolve_name("." * node.level + node.module, module_name) if node.level else node.module
            for alias in node.names:
                table[alias.asname or alias.name] = (base, alias.name)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # a docstring
            continue
        else:
            return None
    return table


class _LazyPackage(importlib.abc.Loader):
    def __init__(self, real: importlib.abc.Loader, origin: str):
        self.real = real
        self.origin = origin

    def create_module(self, spec):
        return None

    def exec_module(self, module: ModuleType) -> None:
        table = _exports(module.__name__, self.origin)
        if table is None:
            self.real.exec_module(module)
            return

        def __getattr__(name: str):
            try:
                base, attr = table[name]
            except KeyError:
                raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}") from None
            value = getattr(importlib.import_module(base), attr)
            setattr(module, name, value)
            return value

        module.__getattr__ = __getattr__
        module.__all__ = list(table)


_CHECKS_LOCK = threading.Lock()


def _lazy_validate_arguments(func=None, *, config=None):
    """pydantic.v1.validate_arguments, its model built on the first call."""
    from pydantic.v1 import validate_arguments

    def decorate(f):
        checked = None

        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            nonlocal checked
            if checked is None:
                with _CHECKS_LOCK:
                    if checked is None:
                        checked = validate_arguments(f, config=config)
            return checked(*args, **kwargs)

        return wrapper

    return decorate(func) if func is not None else decorate


class _LazyChecks(importlib.abc.Loader):
    def __init__(self, real: importlib.abc.Loader):
        self.real = real

    def create_module(self, spec):
        return None

    def exec_module(self, module: ModuleType) -> None:
        import pydantic.v1

        eager = pydantic.v1.validate_arguments
        pydantic.v1.validate_arguments = _lazy_validate_arguments  # read by the module's `from pydantic.v1 import`
        try:
            self.real.exec_module(module)
        finally:
            pydantic.v1.validate_arguments = eager


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in LAZY_PACKAGES and name not in LAZY_CHECKS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or spec.origin is None:
            return spec
        spec.loader = _LazyPackage(spec.loader, spec.origin) if name in LAZY_PACKAGES else _LazyChecks(spec.loader)
        return spec


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


install()

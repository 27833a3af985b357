"""Detectors from outside the package: the ``tal_bench.detectors`` entry-point group.

An installed distribution registers detectors by declaring, in its ``pyproject.toml``::

    [project.entry-points."tal_bench.detectors"]
    mydet = "my_package.detector:SPEC"

where ``SPEC`` is a :class:`~tal_bench.models.base.ModelSpec` (or a function returning one or a
list of them). The group is read once, the first time anything looks a model up, so every
command lists, trains, profiles and reports outside detectors like built-in ones. A plugin that
fails to load (import error, wrong object, a name already taken) is skipped with a one-line
reason (``MODELS.load_errors``): ``talbench ls models`` prints it, asking for that model by name
raises it, and every other detector keeps working.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from tal_bench.models.base import ModelSpec
from tal_bench.registry import MODELS, Registry

ENTRY_POINT_GROUP = "tal_bench.detectors"


def _specs(obj: Any) -> list[ModelSpec]:
    """The ModelSpec(s) an entry point names (directly or as a function's result)."""
    if callable(obj) and not isinstance(obj, ModelSpec):
        obj = obj()
    specs = list(obj) if isinstance(obj, list | tuple) else [obj]
    for spec in specs:
        if not isinstance(spec, ModelSpec):
            raise TypeError(
                f"it names a {type(spec).__name__}; name a tal_bench.models.ModelSpec or a "
                "function returning one (or a list of them)"
            )
    return specs


def _reason(ep: EntryPoint, exc: BaseException) -> str:
    dist = getattr(ep, "dist", None)
    source = f"{dist.name} {dist.version}" if dist is not None else ep.value
    message = str(exc).splitlines()[0] if str(exc) else ""
    return (
        f"detector plugin {ep.name!r} ({source}, {ep.value}) failed to load: "
        f"{type(exc).__name__}: {message}; fix or uninstall that package"
    )


def load_entry_points(registry: Registry = MODELS, group: str = ENTRY_POINT_GROUP) -> None:
    """Register the detectors of every installed ``group`` entry point into ``registry``.

    A failing entry point is recorded in ``registry.load_errors[name]`` (one line) and skipped.
    """
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        try:
            for spec in _specs(ep.load()):
                registry.register(spec.name)(spec)
        except Exception as exc:  # a broken plugin must not break the harness
            registry.load_errors[ep.name] = _reason(ep, exc)


def plugin_errors() -> list[str]:
    """One line per detector plugin that failed to load (after loading them)."""
    MODELS.names()
    return [MODELS.load_errors[name] for name in sorted(MODELS.load_errors)]

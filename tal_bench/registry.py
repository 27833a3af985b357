"""Name -> object registries with loud, helpful errors (models, datasets)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from tal_bench.errors import TalBenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named entries; duplicate names raise, unknown names suggest close matches.

    Example:
        >>> MODELS = Registry("model")
        >>> @MODELS.register("dummy")
        ... def build_dummy(): ...
        >>> MODELS.get("dumy")  # TalBenchError: unknown model 'dumy'; did you mean 'dummy'?
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._loader: Callable[[], None] | None = None  # run once before the first lookup
        self.load_errors: dict[str, str] = {}  # name -> why an outside entry failed to load

    def set_loader(self, loader: Callable[[], None]) -> None:
        """Run ``loader`` (e.g. entry-point discovery) once, before the first lookup."""
        self._loader = loader

    def _load(self) -> None:
        loader, self._loader = self._loader, None
        if loader is not None:
            loader()

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (lower_snake or kebab-case)."""

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the entry for ``name`` or raise a TalBenchError listing what exists."""
        self._load()
        if name in self._entries:
            return self._entries[name]
        if name in self.load_errors:
            raise TalBenchError(self.load_errors[name])
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise TalBenchError(
            f"unknown {self.kind} {name!r}{hint} Available: {', '.join(sorted(self._entries))}"
        )

    def names(self) -> list[str]:
        """Sorted registered names."""
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# The two project registries. Entries are added by the modules in tal_bench.models and
# tal_bench.data when those packages are imported.
MODELS: Registry = Registry("model")
DATASETS: Registry = Registry("dataset")

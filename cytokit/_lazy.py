"""Names a package offers from its submodules, imported on first use (PEP 562).

``import cytokit`` must stay light (no pandas, no gating package), yet
``cytokit.analyze`` and ``from cytokit.study import load_study`` must work: a
package lists what it offers and where each name lives, and `lazy_exports`
gives it the module-level ``__getattr__`` and ``__dir__`` that import the
submodule when a name is first asked for.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for `package` that import each name on first use.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (it must be importing: its namespace is filled in).
    where : mapping of str to str
        Name → module holding it, absolute or relative to `package` (``".folder"``).
    public : iterable of str
        The package's ``__all__``, listed by ``dir()`` before anything is imported.

    Returns
    -------
    __getattr__, __dir__ : callable
        A name found once is kept in the package's namespace, so the next
        lookup does not come back here.
    """
    namespace = sys.modules[package].__dict__
    public = tuple(public)

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(public) | set(where))

    return __getattr__, __dir__

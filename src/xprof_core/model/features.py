"""Optional XSpace features implemented above the model, found by module name on first use.

``XSpace.sql`` and ``XSpace.to_arrow`` build the ``steps`` and ``ops`` tables
from the analysis tools, which sit above the model; the model must not import
them. As the tool registry does for tools, this table names the module and
function that implement each feature, imported only when a user calls it
(``xprof_core.export`` needs the ``sql``/``arrow`` extras anyway).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# feature -> (module, function)
_FEATURES = {
    "sql": ("xprof_core.export.sql", "xspace_sql"),
    "arrow": ("xprof_core.export.sql", "xspace_arrow"),
}


def feature(name: str) -> Callable[..., Any]:
    """The function that implements an optional XSpace feature."""
    module, function = _FEATURES[name]
    implementation: Callable[..., Any] = getattr(importlib.import_module(module), function)
    return implementation

"""xprof-core: fast, lean reading and analysis of ML profiler traces (XSpace).

The public API::

    xs = xprof_core.load("host.xplane.pb")          # or decode_xspace(bytes)
    xs.planes, xs.select(...), xs.stat(rows, "step_num"), xs.to_pandas()
    xs.sql("SELECT ..."), xs.to_arrow()             # with the 'sql' / 'arrow' extras
    xprof_core.show("path/to/run")                   # the web UI inline in a notebook

Names are imported on first use, so that importing a light part of the
package (``xprof_core.deploy.options``, the version) does not load numpy or
the compiled decoder.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xprof_core._version import __version__
from xprof_core.errors import DecodeError, ParamError, ProfileNotFoundError, UnknownToolError, XprofError

if TYPE_CHECKING:
    from xprof_core.model.kineto import decode_trace_json
    from xprof_core.model.load import load
    from xprof_core.model.xspace import EventMetadata, Line, Plane, StatColumn, XSpace, decode_xspace
    from xprof_core.notebook import show

_LAZY = {
    "load": "xprof_core.model.load",
    "EventMetadata": "xprof_core.model.xspace",
    "Line": "xprof_core.model.xspace",
    "Plane": "xprof_core.model.xspace",
    "StatColumn": "xprof_core.model.xspace",
    "XSpace": "xprof_core.model.xspace",
    "decode_xspace": "xprof_core.model.xspace",
    "decode_trace_json": "xprof_core.model.kineto",
    "show": "xprof_core.notebook",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'xprof_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DecodeError",
    "EventMetadata",
    "Line",
    "ParamError",
    "Plane",
    "ProfileNotFoundError",
    "StatColumn",
    "UnknownToolError",
    "XSpace",
    "XprofError",
    "__version__",
    "decode_trace_json",
    "decode_xspace",
    "load",
    "show",
]

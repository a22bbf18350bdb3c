"""xprof-core: fast, lean reading and analysis of ML profiler traces (XSpace).

The public API::

    xs = xprof_core.load("host.xplane.pb")          # or decode_xspace(bytes)
    xs.planes, xs.select(...), xs.stat(rows, "step_num"), xs.to_pandas()
"""

from xprof_core.errors import DecodeError, ProfileNotFoundError, UnknownToolError, XprofError
from xprof_core.loader import load
from xprof_core.xspace import EventMetadata, Line, Plane, StatColumn, XSpace, decode_xspace

__version__ = "0.1.0"

__all__ = [
    "DecodeError",
    "EventMetadata",
    "Line",
    "Plane",
    "ProfileNotFoundError",
    "StatColumn",
    "UnknownToolError",
    "XSpace",
    "XprofError",
    "__version__",
    "decode_xspace",
    "load",
]

from xprof_core.errors import DecodeError, XprofError  # noqa: F401

"""Storage: logdirs, runs and hosts over fsspec, and the bytes of a host file (read only)."""

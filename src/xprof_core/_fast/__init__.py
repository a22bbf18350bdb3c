"""Compiled core: the XSpace wire decoder and aggregation kernels (private)."""

"""Compiled nogil kernels. Private: call them through fastconv's public functions."""

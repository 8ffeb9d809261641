"""Numba kernels on plain numpy arrays: compensation, transforms, gate membership, statistics.

Imports only numpy, numba and math. Nothing compiles at import time.
"""

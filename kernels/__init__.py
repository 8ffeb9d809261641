"""Numba kernels on plain numpy arrays: compensation, transforms, gate membership, statistics.

Imports only numpy, numba and math. Nothing compiles at import time.
"""

from .compensation import compensate, compensation_matrix
from .transforms import (
    XF_ASINH,
    XF_BIEX,
    XF_HYPERLOG,
    XF_LINEAR,
    XF_LOG,
    XF_LOGICLE,
    XF_NONE,
    XF_NPARAMS,
    asinh,
    asinh_inverse,
    biex,
    biex_inverse,
    hyperlog,
    hyperlog_inverse,
    linear,
    linear_inverse,
    log,
    log_inverse,
    logicle,
    logicle_inverse,
    ratio,
    ratio_inverse,
    ratio_scalar,
    transform_inverse_scalar,
    transform_params,
    transform_scalar,
)

__all__ = [
    # transforms
    "XF_ASINH",
    "XF_BIEX",
    "XF_HYPERLOG",
    "XF_LINEAR",
    "XF_LOG",
    "XF_LOGICLE",
    "XF_NONE",
    "XF_NPARAMS",
    "asinh",
    "asinh_inverse",
    "biex",
    "biex_inverse",
    # compensation
    "compensate",
    "compensation_matrix",
    "hyperlog",
    "hyperlog_inverse",
    "linear",
    "linear_inverse",
    "log",
    "log_inverse",
    "logicle",
    "logicle_inverse",
    "ratio",
    "ratio_inverse",
    "ratio_scalar",
    "transform_inverse_scalar",
    "transform_params",
    "transform_scalar",
]

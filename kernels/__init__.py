"""Numba kernels on plain numpy arrays: compensation, transforms, gate membership, statistics.

Imports only numpy, numba and math. Nothing compiles at import time.
"""

if __name__ != "cytokit.kernels":  # e.g. `import kernels` run in a clone's root folder
    # compiled under another module name, the kernels would be written into the shared
    # Numba cache, where the installed package then fails to load them
    raise ImportError(
        f"this folder is the package cytokit.kernels, imported here as {__name__!r}: "
        "import cytokit.kernels (from cytokit import kernels)"
    )


from .compensation import compensate, compensation_matrix
from .finite import finite_rows, nonfinite_counts
from .fused import evaluate_plan, unpack_membership
from .gates import (
    GATE_AND,
    GATE_ELLIPSOID,
    GATE_NOT,
    GATE_OR,
    GATE_POLYGON,
    GATE_QUADRANT,
    GATE_RECTANGLE,
    boolean_membership,
    ellipsoid_membership,
    polygon_membership,
    quadrant_interval,
    quadrant_membership,
    rectangle_membership,
)
from .plan import GatingPlan, PlanBuilder
from .som import map_nodes, node_histograms, som_batch, som_online
from .stats import PopulationStats, dimension_values, population_stats
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
    transform_lut,
    transform_params,
    transform_scalar,
    transform_scalar_lut,
)

__all__ = [
    "GATE_AND",
    "GATE_ELLIPSOID",
    "GATE_NOT",
    "GATE_OR",
    "GATE_POLYGON",
    "GATE_QUADRANT",
    "GATE_RECTANGLE",
    # transforms
    "XF_ASINH",
    "XF_BIEX",
    "XF_HYPERLOG",
    "XF_LINEAR",
    "XF_LOG",
    "XF_LOGICLE",
    "XF_NONE",
    "XF_NPARAMS",
    "GatingPlan",
    "PlanBuilder",
    "PopulationStats",
    "asinh",
    "asinh_inverse",
    "biex",
    "biex_inverse",
    "boolean_membership",
    # compensation
    "compensate",
    "compensation_matrix",
    "dimension_values",
    "ellipsoid_membership",
    "evaluate_plan",
    "finite_rows",
    "hyperlog",
    "hyperlog_inverse",
    "linear",
    "linear_inverse",
    "log",
    "log_inverse",
    "logicle",
    "logicle_inverse",
    "map_nodes",
    "node_histograms",
    "nonfinite_counts",
    "polygon_membership",
    "population_stats",
    "quadrant_interval",
    "quadrant_membership",
    "ratio",
    "ratio_inverse",
    "ratio_scalar",
    "rectangle_membership",
    "som_batch",
    "som_online",
    "transform_inverse_scalar",
    "transform_lut",
    "transform_params",
    "transform_scalar",
    "transform_scalar_lut",
    "unpack_membership",
]

"""Gating strategies: gates and transforms as values, the gating tree, and its file formats.

Typical use::

    from cytokit import gating
    strategy = gating.load_strategy("strategy.xml")   # .xml Gating-ML 2.0, .wsp FlowJo, .yaml cytokit
    result = strategy.apply(sample)                    # GatingResult
    result.counts                                      # one row per population
    result.membership("/Lymphocytes/Singlets")         # bool (n_events,)

FlowKit objects (``flowkit.Sample``, ``GatingStrategy``, ``Session``, ``Workspace``)
convert both ways without files: `sample_from_flowkit`, `from_flowkit`, `to_flowkit`.
"""

from cytokit.gating.flowjo import load_workspace
from cytokit.gating.flowkit_objects import from_flowkit, sample_from_flowkit, to_flowkit
from cytokit.gating.gates import (
    FCS,
    UNCOMPENSATED,
    AdaptiveGate,
    BooleanGate,
    Dimension,
    Divider,
    EllipsoidGate,
    Gate,
    PolygonGate,
    Quadrant,
    QuadrantGate,
    RectangleGate,
    SpectrumMatrix,
)
from cytokit.gating.gatingml import read_gatingml, write_gatingml
from cytokit.gating.io import load_strategy
from cytokit.gating.result import GatingResult
from cytokit.gating.strategy import GatingStrategy, Population
from cytokit.gating.transforms import (
    AsinhTransform,
    BiexTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    RatioTransform,
    Transform,
    transform_from_config,
)

__all__ = [
    "FCS",
    "UNCOMPENSATED",
    "AdaptiveGate",
    "AsinhTransform",
    "BiexTransform",
    "BooleanGate",
    "Dimension",
    "Divider",
    "EllipsoidGate",
    "Gate",
    "GatingResult",
    "GatingStrategy",
    "HyperlogTransform",
    "LinearTransform",
    "LogTransform",
    "LogicleTransform",
    "PolygonGate",
    "Population",
    "Quadrant",
    "QuadrantGate",
    "RatioTransform",
    "RectangleGate",
    "SpectrumMatrix",
    "Transform",
    "from_flowkit",
    "load_strategy",
    "load_workspace",
    "read_gatingml",
    "sample_from_flowkit",
    "to_flowkit",
    "transform_from_config",
    "write_gatingml",
]

"""Adaptive gates: gates that place themselves on each sample's data.

Fixed gates drawn once break when the cytometer drifts between days (gains,
laser power) or when a population's share changes by orders of magnitude after
an infusion. The gates here are fitted per sample by `GatingStrategy.apply`
(see `cytokit.gating.AdaptiveGate.fit`): each sees the values of its
dimensions (compensated and transformed) for its parent's events, and becomes
an ordinary gate that the fused evaluator runs and that the result keeps, so
every placement can be shown and checked.

=====================  ===============================  ==========================
gate                   finds                            becomes
=====================  ===============================  ==========================
`ValleyGate`           the density valley between the   `RectangleGate` (one side)
                       two main modes of one marker
`ValleyQuadrantGate`   one valley per dimension         `QuadrantGate`
`SingletGate`          the singlet diagonal of FSC-A    `PolygonGate` (a band)
                       against FSC-H
`ClusterGate`          a cluster near an expected       `PolygonGate` (2-D) or
                       place (Gaussian mixture)         `EllipsoidGate`
=====================  ===============================  ==========================

Valleys (`Valley`)
------------------
The values are binned (512 bins over the 0.05–99.95 % range) and smoothed with
a Gaussian kernel whose width is Silverman's rule times ``smooth``. Modes are
local maxima at least ``min_peak`` × the tallest; between two neighbouring
modes the valley is the lowest point (the middle of it where the density is
flat). A valley must lie inside ``between`` and be deep: its density at most
``max_valley`` × the smaller of the two modes. Among the valleys that qualify
the one that separates the two largest masses wins: the largest
``min(left mode, right mode) − valley``. So ``CD56`` on lymphocytes cuts between
the negative cells and the CD56dim NK cells, not between CD56dim and
CD56bright.

When there is no such valley (one population only, e.g. no dead cells, or a
baseline sample where every cell is HLA-A2−) the lone mode is taken to be the
``single`` population: ``negative`` puts the threshold ``spread`` robust
standard deviations above the mode, ``positive`` as far below it. The standard
deviation is measured on the side of the mode away from the threshold (the
median distance there / 0.6745), which the other population's tail does not
reach. ``auto`` decides by where the mode lies: below ``fallback`` (or the
middle of ``between``) it is the negative population. The result is kept
inside ``between``.

Failure modes: too few events (fewer than ``min_events``); no qualifying
valley and no way to tell what the lone mode is; two populations so close that
their valley is shallower than ``max_valley`` (the threshold then follows the
lone-mode rule, which is right only if one of them is rare). Skewed or heavily
spread populations move the valley towards the smaller population, which is
what minimises misclassification when the populations are unequal.

When a fit fails, the gate uses the user's fixed bounds (``fallback``) and
emits an `AdaptiveGateWarning`; without fixed bounds it raises `GatingError`
naming the gate and why. `GatingStrategy.apply` runs the fit, so the sample is
the one being applied.

Scatter (`SingletGate`, `ClusterGate`)
--------------------------------------
`SingletGate` works on ``log(FSC-H / FSC-A)`` against ``log FSC-A``: single
cells lie on a line (FSC-H proportional to FSC-A, whatever the gain), doublets
below it (their area adds up, their height does not). It finds the mode of the
log ratio in 8 quantile bins of FSC-A, fits a line through the modes
(weighted by events), estimates the spread from the residuals *above* the
line (the side doublets do not reach) and keeps the band within ``width``
robust standard deviations of the line. The band is a polygon following the
line over the data's FSC-A range. It fails with fewer than ``min_events``
events; the band may be limited with ``ratio`` (bounds on FSC-H/FSC-A).

`ClusterGate` fits a Gaussian mixture (scikit-learn, ``components``
components, full covariances) on a subsample, by default on the log of
untransformed (linear scatter) dimensions, and takes the component whose mean
is closest to ``near`` (the expected place, in the dimensions' own units).
Components whose means lie within Mahalanobis distance ``merge`` of it join it
(activated blasts next to resting lymphocytes). The gate is the convex hull of
the chosen components' ellipses holding ``coverage`` of each. It fails when
no component with at least ``min_weight`` of the events lies within
``within`` (bounds on the chosen mean). Gain drift moves clusters by a small
fraction of their distance to the next, so ``near`` needs only be roughly
right; a lab should still check the placed gates of a new instrument.
"""

from cytokit.gating.adaptive_base import AdaptiveGateWarning, smoothed_density
from cytokit.gating.adaptive_scatter import ClusterGate, SingletGate
from cytokit.gating.adaptive_valley import (
    Valley,
    ValleyGate,
    ValleyQuadrantGate,
    find_valley,
    quadrant_gate,
    quadrant_signs,
)

__all__ = [
    "AdaptiveGateWarning",
    "ClusterGate",
    "SingletGate",
    "Valley",
    "ValleyGate",
    "ValleyQuadrantGate",
    "find_valley",
    "quadrant_gate",
    "quadrant_signs",
    "smoothed_density",
]

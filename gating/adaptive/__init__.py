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
`ValleyGate`           the density valley between the   `RectangleGate` (one side);
                       two main modes of one marker     with a second, tilting
                       (or along the best-tilted line   dimension a `PolygonGate`
                       on two)                          (a half-plane)
`ValleyQuadrantGate`   one valley per dimension (or     `QuadrantGate`
                       one per side of another divider)
`SingletGate`          the singlet diagonal of FSC-A    `PolygonGate` (a band)
                       against FSC-H
`ClusterGate`          the cluster nearest an expected  `PolygonGate` (log scale)
                       place (robust trimmed ellipse)   or `EllipsoidGate`
=====================  ===============================  ==========================

Valleys (`Valley`)
------------------
The values are binned (512 bins over the 0.05–99.95 % range) and smoothed with
a Gaussian kernel whose width is Silverman's rule times ``smooth`` (both from
`cytokit.stats.density`, shared with the chimerism and phenotype thresholds;
bins beyond the range count as empty, however wide the kernel). Modes are
local maxima inside the range at least ``min_peak`` × the tallest; between two neighbouring
modes the valley is the lowest point. Where the valley is empty (density under
2 % of the smaller mode) the cut is the middle of the empty stretch; in a
shallow valley it is the end, facing the larger mode, of the stretch within
30 % of the lowest density: a small, broad population beside a large, narrow
one (CIK beside T cells on CD56) leaves a flat-bottomed valley whose lowest
point lies past the place where the large population's tail meets the small
one, which is where the fewest events are misclassified. A valley must lie inside ``between`` and be deep: its density at most
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
lone-mode rule, which is right only if one of them is rare). A population of a
few dozen events may not make a mode of its own (``min_peak``); a lab with
very rare positives should give ``single: negative`` so the cut then follows
the negative population's edge.

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

`ClusterGate` finds the density peak (a smoothed 128 × 128 histogram) nearest
``near``, the expected centre in the dimensions' units, by default on the log
of untransformed (linear scatter) dimensions. From there it estimates the
cluster's centre and covariance from the events within Mahalanobis distance
``core`` of the current estimate, iterating until stable and correcting the
covariance for the trimming (for a Gaussian truncated at ``d² <= c`` the
covariance shrinks by ``F(c; k+2) / F(c; k)``, F the chi-square CDF), so
neighbouring clusters do not pull it. The gate is the ellipse at Mahalanobis
``distance`` (a polygon when fitted on a log scale). It fails when fewer than
``min_events`` events lie in the core, or when the centre found lies outside
``within``. Gain drift shifts a cluster by a small fraction of its distance to
the next, so ``near`` need only be roughly right. An ellipse cannot separate
clusters that overlap: activated lymphocytes (CIK blasts) reach into the
monocytes on FSC × SSC, so a lymphocyte gate that keeps them takes in some
monocytes, which the lineage markers then leave out.
"""

from cytokit.gating.adaptive.base import AdaptiveGateWarning, smoothed_density
from cytokit.gating.adaptive.scatter import ClusterGate, SingletGate
from cytokit.gating.adaptive.valley import (
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

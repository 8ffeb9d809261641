"""Numeric estimation with no domain objects: densities, modes and valleys; confidence intervals.

`cytokit.stats.density`
    Fine histograms and the smoothed densities, modes and valleys read from
    them (donor-marker thresholds, positivity thresholds).
`cytokit.stats.intervals`
    Binomial (Wilson, Clopper-Pearson) and Student's t intervals, without scipy.

These modules import numpy and the base layer only, so every stage above
(study settings, gating, the analysis) may use them.
"""

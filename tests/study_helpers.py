"""Helpers for the analysis tests: a fixed gating strategy for simulated studies, study folders.

The strategy gates the simulator's populations with fixed (non-adaptive)
gates wide enough for its day-to-day drift; it has the paths the simulator's
``study.toml`` names. `make_study` writes a simulated study folder with the
strategy as Gating-ML beside it.
"""

from __future__ import annotations

from pathlib import Path

from cytokit import gating as G
from cytokit.simulate import simulate_study

L = G.LogicleTransform()
FSC, FSCH, SSC = G.Dimension("FSC-A"), G.Dimension("FSC-H"), G.Dimension("SSC-A")


def fl(channel: str) -> G.Dimension:
    return G.Dimension(channel, compensation=G.FCS, transform=L)


def simulated_strategy() -> G.GatingStrategy:
    """Lymphocytes → Singlets → Live → CD3/CD56 quadrants → CD56bright/dim; Beads."""
    cd3 = G.Divider("cd3", fl("APC-A"), (0.45,))
    cd56 = G.Divider("cd56", fl("PE-A"), (0.42,))
    quads = tuple(
        G.Quadrant(f"CD3{a}CD56{b}", (("cd3", i), ("cd56", j)))
        for a, i in (("+", 1.0), ("-", 0.0))
        for b, j in (("+", 1.0), ("-", 0.0))
    )
    gates = [
        G.RectangleGate(
            id="Lymphocytes", dims=(FSC, SSC), min=(28_000, None), max=(170_000, 42_000)
        ),
        G.PolygonGate(
            id="Singlets",
            parent="Lymphocytes",
            dims=(FSC, FSCH),
            vertices=((0, 0), (262_144, 0.78 * 262_144), (262_144, 262_144)),
        ),
        G.RectangleGate(
            id="Live", parent="Singlets", dims=(fl("PerCP-Cy5-5-A"),), min=(None,), max=(0.5,)
        ),
        G.QuadrantGate(id="Q", parent="Live", dividers=(cd3, cd56), quadrants=quads),
        G.RectangleGate(
            id="CD56bright", parent="CD3-CD56+", dims=(fl("PE-A"),), min=(0.745,), max=(None,)
        ),
        G.RectangleGate(
            id="CD56dim", parent="CD3-CD56+", dims=(fl("PE-A"),), min=(None,), max=(0.745,)
        ),
        G.RectangleGate(
            id="Beads",
            dims=(FSC, SSC, fl("APC-A")),
            min=(None, 25_000, 0.78),
            max=(45_000, None, None),
        ),
    ]
    return G.GatingStrategy(gates, name="simulated study (fixed gates)")


def make_study(folder: Path, design, *, strategy: G.GatingStrategy | None = None) -> Path:
    """Simulate `design` into `folder` and put `strategy` there as ``strategy.xml``."""
    out = simulate_study(folder, design, workers=1)
    (strategy or simulated_strategy()).to_gatingml(out / "strategy.xml")
    toml = (out / "study.toml").read_text()
    (out / "study.toml").write_text(toml.replace('"strategy.yaml"', '"strategy.xml"'))
    return out

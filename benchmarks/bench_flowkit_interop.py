"""Benchmark: a FlowKit pipeline's objects gated by cytokit vs by FlowKit's ``gate_sample``.

Usage::

    python benchmarks/bench_flowkit_interop.py                  # 1M events, 5 runs each
    python benchmarks/bench_flowkit_interop.py --n 200000 --repeats 3

The pipeline holds a ``flowkit.Sample`` and a ``flowkit.GatingStrategy``; it
switches its gating to cytokit with::

    strategy = gating.from_flowkit(fk_strategy)
    result = strategy.apply(gating.sample_from_flowkit(fk_sample))

Both steps are timed together with the gating (the conversions are part of
the path a pipeline pays on every call), against FlowKit's own
``fk_strategy.gate_sample(fk_sample)`` on the same objects, in the same run.
Counts of both must be equal, gate by gate, or the script stops.

Cases:

* ``simulated``: a simulated NK-patient file (`cytokit.simulate.benchmark_file`,
  11 channels with ``$SPILLOVER``) and sample_data's adaptive strategy fitted
  to it and handed to FlowKit with `cytokit.gating.to_flowkit`: polygons,
  compensated logicle rectangles, quadrants, Booleans (18 populations).
* ``gatingml``: the ISAC compliance document ``gml_all_gates.xml`` parsed by
  FlowKit and ``data1.fcs`` (13,367 events, 49 populations of every gate type
  and transform), when the corpus is beside the repository.

Each time is the median of ``--repeats`` runs after one warm-up call (which
also loads cytokit's compiled kernels); the ratio is FlowKit's median over
cytokit's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GATE_REF = ROOT.parent / "shared" / "corpus" / "flowkit" / "data" / "gate_ref"


def _median_time(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _fk_counts(report) -> dict[str, int]:
    out = {}
    for row in report.itertuples():
        path = tuple(row.gate_path)
        if isinstance(row.quadrant_parent, str):
            path = (*path, row.quadrant_parent)
        out["/".join([*path[1:], row.gate_name])] = int(row.count)
    return out


def run_case(name: str, fk_sample, fk_strategy, repeats: int) -> dict:
    from cytokit import gating

    def ours():
        strategy = gating.from_flowkit(fk_strategy)
        return strategy.apply(gating.sample_from_flowkit(fk_sample), membership=False)

    def theirs():
        return fk_strategy.gate_sample(fk_sample)

    t_ours, result = _median_time(ours, repeats)
    t_theirs, fk_result = _median_time(theirs, repeats)
    want = _fk_counts(fk_result.report)
    # ids are FlowKit paths; compare through FlowKit's names and paths
    got = {}
    for p in result.strategy.populations:
        got[p.id.strip("/")] = int(result.count(p.id))
    if got != want:
        diff = {
            k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)
        }
        raise SystemExit(f"{name}: counts differ (cytokit, FlowKit): {diff}")
    return {
        "case": name,
        "events": fk_sample.event_count,
        "populations": len(want),
        "cytokit_s": t_ours,
        "flowkit_s": t_theirs,
        "ratio": t_theirs / t_ours,
    }


def simulated_case(n: int, repeats: int) -> dict:
    import flowkit as fk

    import cytokit
    from cytokit import gating
    from cytokit.simulate import benchmark_file

    with tempfile.TemporaryDirectory() as tmp:
        path = benchmark_file(Path(tmp) / "bench.fcs", n_events=n, seed=1)
        sample = cytokit.read_fcs(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = gating.load_strategy(ROOT / "sample_data" / "strategy.yaml").fit(sample)
        fk_strategy = gating.to_flowkit(fitted)
        fk_sample = fk.Sample(str(path))
        return run_case("simulated", fk_sample, fk_strategy, repeats)


def gatingml_case(repeats: int) -> dict | None:
    if not (GATE_REF / "data1.fcs").exists():
        print(f"gatingml: skipped, the corpus is not at {GATE_REF}")
        return None
    import flowkit as fk

    fk_strategy = fk.parse_gating_xml(str(GATE_REF / "gml" / "gml_all_gates.xml"))
    fk_sample = fk.Sample(str(GATE_REF / "data1.fcs"))
    return run_case("gatingml", fk_sample, fk_strategy, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="events of the simulated file")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = [simulated_case(args.n, args.repeats), gatingml_case(args.repeats)]
    print(
        f"{'case':<10} {'events':>10} {'pops':>5} {'cytokit s':>10} {'FlowKit s':>10} {'ratio':>7}"
    )
    for r in rows:
        if r is None:
            continue
        print(
            f"{r['case']:<10} {r['events']:>10,} {r['populations']:>5} {r['cytokit_s']:>10.4f} "
            f"{r['flowkit_s']:>10.4f} {r['ratio']:>6.1f}x"
        )


if __name__ == "__main__":
    main()

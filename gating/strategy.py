"""`GatingStrategy`: a tree of gates, its populations and paths, applied to samples.

Every gate defines one population (a quadrant gate one per quadrant). A
population's path is its parent's path, ``/`` and its name:
``/Lymphocytes/Singlets/Live/CD3-CD56+``. Ids are unique in a strategy; paths
must be unique too, so either names a population.

Paths are not stored: a population's path is built from its ancestors' names
when asked for, and look-ups by path walk an index of path steps, so a deep
tree costs memory in proportion to its populations, not to the sum of its path
lengths. A strategy is refused (`GatingError`) beyond the bounds of
`cytokit.gating.limits`: depth, number of populations, path length.

`GatingStrategy.apply` compiles the tree for the sample's channels (plans are
cached per channel layout and spillover, so a batch of files from one panel
compiles once), fits adaptive gates on their parents' events, and evaluates the
whole tree in one pass of the fused kernel.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cytokit import kernels as K
from cytokit.errors import GatingError, did_you_mean, offer
from cytokit.gating.adaptive.base import AdaptiveGateWarning, collect_fallbacks
from cytokit.gating.compile import Resolver, compile_plan, dimension_columns, dimension_values
from cytokit.gating.gates import (
    FCS,
    AdaptiveGate,
    Dimension,
    Gate,
    QuadrantGate,
    SpectrumMatrix,
)
from cytokit.gating.limits import MAX_DEPTH, MAX_PATH_LENGTH, MAX_POPULATIONS, shorten
from cytokit.sample import Sample, Spillover, SpilloverWarning, spillover_conditioning

__all__ = ["GatingStrategy", "Population"]

#: Events an adaptive gate is fitted on at most (a random subsample of its parent).
FIT_EVENTS = 200_000
_PLAN_CACHE_SIZE = 16


@dataclass(frozen=True, eq=False)
class Population:
    """One population of a strategy.

    Attributes
    ----------
    id : str
        The gate id (a quadrant's id for quadrants).
    name : str
    parent : str or None
        Id of the parent population.
    gate : Gate
        The gate that defines it (the `QuadrantGate` for a quadrant).
    depth : int
        1 for top-level populations.
    path : str
        ``/A/B/C``: built from the ancestors' names on each access.
    """

    id: str
    name: str
    parent: str | None
    gate: Gate
    depth: int
    # the strategy's populations by id, shared by all of them: paths are walked through it
    _tree: Mapping[str, Population] = field(repr=False)

    @property
    def path(self) -> str:
        names = []
        p: Population | None = self
        while p is not None:
            names.append(p.name)
            p = None if p.parent is None else self._tree[p.parent]
        return "/" + "/".join(reversed(names))

    def _key(self) -> tuple:
        return (self.id, self.name, self.parent, self.gate, self.depth, self.path)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Population):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.id, self.path))


class _PathIndex(Mapping):
    """Populations by path, kept as a tree of path steps instead of path strings.

    A path is the steps between its ``/``; a name holding ``/`` takes several
    steps, so two populations have the same path exactly when they reach the
    same step node.
    """

    def __init__(self) -> None:
        self._step: dict[tuple[int, str], int] = {}  # (node, step) -> node; the root is 0
        self._at: dict[int, Population] = {}
        self._node: dict[str, int] = {}  # population id -> node

    def add(self, pop: Population) -> Population:
        """Index `pop` (its parent first); return the population already at its path, or pop."""
        node = 0 if pop.parent is None else self._node[pop.parent]
        for step in pop.name.split("/"):
            nxt = self._step.get((node, step))
            if nxt is None:
                nxt = self._step[(node, step)] = len(self._step) + 1
            node = nxt
        self._node[pop.id] = node
        return self._at.setdefault(node, pop)

    def __getitem__(self, path: str) -> Population:
        if isinstance(path, str) and path.startswith("/"):
            node: int | None = 0
            for step in path[1:].split("/"):
                node = self._step.get((node, step))
                if node is None:
                    break
            else:
                if node in self._at:
                    return self._at[node]
        raise KeyError(path)

    def __iter__(self) -> Iterator[str]:
        return (p.path for p in self._at.values())

    def __len__(self) -> int:
        return len(self._at)


def _refuse_stored_values(sample: Sample, columns) -> None:
    """Gates are on scale values: refuse a sample of stored values (``scaled=False``)
    whose read channels scaling would change, naming them and the fix."""
    try:
        step = float(sample.keyword("$TIMESTEP", "nan"))
    except ValueError:
        step = float("nan")
    changed = []
    for j in columns:
        c = sample.channels[j]
        timed = c.name.casefold() == "time" and np.isfinite(step) and step > 0 and step != 1
        if c.is_log or (c.gain not in (0.0, 1.0)) or timed:
            changed.append(c.name)
    if changed:
        raise GatingError(
            f"{sample.name}: holds stored values (read with scale=False), but gates are on "
            f"scale values, and scaling changes {', '.join(changed)} ($PnE, $PnG or "
            "$TIMESTEP); read the file with read_fcs(path) (scale=True, the default)"
        )


class GatingStrategy:
    """An immutable gating tree.

    Parameters
    ----------
    gates : iterable of Gate
        In any order; parents and Boolean operands are found by id.
    matrices : mapping of str to SpectrumMatrix, optional
        Named compensation matrices that dimensions may refer to.
    name : str
    source : str
        Where it was read from (for messages).
    aliases : mapping of str to str, optional
        Other ids that name populations, ``{alias: population id}``: a Gating-ML
        file's ids where cytokit's own differ (an id that is no ``xs:ID``, such as
        ``/Lymphocytes/Singlets``, is written as ``_Lymphocytes_Singlets``). An
        alias names its population as its id does (`matches`).

    Raises
    ------
    GatingError
        Repeated ids or paths, a parent or operand that does not exist, a cycle,
        a dimension naming an unknown matrix, a tree beyond the bounds of
        `cytokit.gating.limits` (depth, populations, path length), an alias of no
        population.
    """

    def __init__(
        self,
        gates: Iterable[Gate],
        *,
        matrices: Mapping[str, SpectrumMatrix] | None = None,
        name: str = "",
        source: str = "",
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.matrices = dict(matrices or {})
        where = f" in {source}" if source else ""
        gates = list(gates)
        for g in gates:
            if not isinstance(g, Gate):
                raise GatingError(f"strategy{where}: {g!r} is not a Gate")
        owner: dict[str, Gate] = {}
        for g in gates:
            for pid in g.population_ids:
                if pid in owner:
                    raise GatingError(
                        f"strategy{where}: id {pid!r} is used twice; gate and quadrant ids "
                        "must be unique"
                    )
                owner[pid] = g
        if len(owner) > MAX_POPULATIONS:
            raise GatingError(
                f"strategy{where}: {len(owner):,} populations; cytokit reads strategies of at "
                f"most {MAX_POPULATIONS:,} populations (a quadrant counts as one), far above any "
                "real one"
            )
        for g in gates:
            for ref in g.references:
                if ref not in owner:
                    raise GatingError(
                        f"strategy{where}: gate {g.id!r} refers to {ref!r}, which is not a gate "
                        "or quadrant of the strategy"
                    )
            for d in g.dimensions:
                if d.compensation not in ("uncompensated", "FCS", *self.matrices):
                    raise GatingError(
                        f"strategy{where}: gate {g.id!r} uses compensation {d.compensation!r}; "
                        f"define it, or use 'FCS' or 'uncompensated'"
                    )
        self.gates: tuple[Gate, ...] = tuple(_topological(gates, owner, where))
        self._owner = owner
        populations, self._by_path = self._populations(where)
        self.populations: tuple[Population, ...] = tuple(populations)
        self._by_id = {p.id: p for p in self.populations}
        self._by_name: dict[str, list[Population]] = {}
        for p in self.populations:
            self._by_name.setdefault(p.name, []).append(p)
            other = self._by_path.get(p.id)
            if other is not None and other is not p:
                # an exact path must name one population whatever the ids are
                raise GatingError(
                    f"strategy{where}: the id {p.id!r} of population {p.path!r} is the path of "
                    "another population; rename the id"
                )
        self.aliases = {a: pid for a, pid in (aliases or {}).items() if a != pid}
        for a, pid in self.aliases.items():
            if pid not in self._by_id:
                raise GatingError(
                    f"strategy{where}: alias {a!r} names {pid!r}, which is not a population id "
                    "of the strategy"
                )
        self._plans: dict[tuple, tuple] = {}

    # -- structure --------------------------------------------------------------------
    def _populations(self, where: str) -> tuple[list[Population], _PathIndex]:
        # depth and path length first, as numbers, so that a tree beyond the bounds is
        # refused before any path is built
        depth: dict[str, int] = {}
        length: dict[str, int] = {}
        deepest = longest = None
        for g in self.gates:
            d, n = (0, 0) if g.parent is None else (depth[g.parent], length[g.parent])
            for pid, name in _names(g):
                depth[pid], length[pid] = d + 1, n + 1 + len(name)
                if deepest is None or depth[pid] > depth[deepest]:
                    deepest = pid
                if longest is None or length[pid] > length[longest]:
                    longest = pid
        if deepest is not None and depth[deepest] > MAX_DEPTH:
            raise GatingError(
                f"strategy{where}: the gate tree is {depth[deepest]:,} levels deep (at "
                f"{shorten(deepest)!r}); cytokit reads trees of at most {MAX_DEPTH} levels, far "
                "above any real one: check the parent references"
            )
        out: list[Population] = []
        tree: dict[str, Population] = {}
        index = _PathIndex()
        for g in self.gates:
            for pid, name in _names(g):
                pop = Population(pid, name, g.parent, g, depth[pid], tree)
                tree[pid] = pop
                if pid == longest and length[pid] > MAX_PATH_LENGTH:
                    raise GatingError(
                        f"strategy{where}: population {shorten(pop.path)!r} has a path of "
                        f"{length[pid]:,} characters; cytokit reads paths of at most "
                        f"{MAX_PATH_LENGTH:,}: shorten the gate names"
                    )
                first = index.add(pop)
                if first is not pop:
                    raise GatingError(
                        f"strategy{where}: populations {first.id!r} and {pid!r} have the same "
                        f"path {shorten(pop.path)!r}; rename one of them"
                    )
                out.append(pop)
        return out, index

    def matches(self, key: str) -> tuple[tuple[Population, str], ...]:
        """Every population `key` may name, each with how (``path``, ``id`` or ``name``).

        A full path (``/A/B``) is exact: no id may equal another population's
        path. Any other key is matched as an id, as a path or a path-like id
        without its leading ``/`` and as a population name; see `population`.
        """
        hit = self._by_path.get(key)
        if hit is not None:
            return ((hit, "path"),)
        found: dict[str, tuple[Population, str]] = {}
        if key in self._by_id:
            found[self._by_id[key].id] = (self._by_id[key], "id")
        if key in self.aliases:
            p = self._by_id[self.aliases[key]]
            found.setdefault(p.id, (p, "id"))
        if not key.startswith("/") and "/" + key in self._by_path:
            found.setdefault(self._by_path["/" + key].id, (self._by_path["/" + key], "path"))
        if not key.startswith("/") and "/" + key in self._by_id:
            # an id that is itself path-like (FlowKit's: "/Quadrant1/Q1"): its "/" optional too
            found.setdefault(self._by_id["/" + key].id, (self._by_id["/" + key], "id"))
        for p in self._by_name.get(key, ()):
            found.setdefault(p.id, (p, "name"))
        return tuple(found.values())

    def population(self, key: str) -> Population:
        """The one population `key` names.

        `key` is a path (``/Lymphocytes/Singlets``; the leading ``/`` may be
        left out), a gate or quadrant id (or its id in the Gating-ML file the
        strategy was read from, `aliases`), or a population name that no other
        population has (`matches`).

        Raises
        ------
        GatingError
            No population fits, or several do (the message lists them with
            their paths and how `key` names each: give the full path).
        """
        found = self.matches(key)
        if len(found) == 1:
            return found[0][0]
        where = f" of {self.source}" if self.source else ""
        if found:
            raise GatingError(
                f"{key!r} names {len(found)} populations of the strategy{where}: "
                + "; ".join(f"{p.path} (by its {how})" for p, how in found)
                + "; give the full path of the one you mean"
            )
        raise GatingError(
            f"no population {key!r} in the strategy{where}{self.did_you_mean(key)}; "
            "populations are: " + ", ".join(p.path for p in self.populations)
        )

    def did_you_mean(self, key: str) -> str:
        """`` (did you mean '/A/B'?)`` for a near miss of a path, id or name, else ``""``.

        A path (a key with a ``/``) is compared with paths, anything else with
        ids and names.
        """
        if "/" in key:
            key = "/" + key.lstrip("/")
            options = [p.path for p in self.populations]
            # the end of a path ('mDC/IFNa+' for '/Live/APC/mDC/IFNa+'): the paths it ends
            ends = [p for p in options if p.endswith(key) and p != key]
            if ends:
                return offer(ends[:3])
        else:
            options = [p.id for p in self.populations] + [p.name for p in self.populations]
            options += list(self.aliases)
        return did_you_mean(key, options)

    def by_id(self, population_id: str) -> Population:
        """The population whose gate or quadrant id is exactly `population_id`.

        For code holding ids taken from this strategy (`Population.parent`,
        `Gate.parent`); names given by people go through `population`.
        """
        try:
            return self._by_id[population_id]
        except KeyError:
            where = f" of {self.source}" if self.source else ""
            raise GatingError(
                f"no population with id {population_id!r} in the strategy{where}"
            ) from None

    def gate(self, gate_id: str) -> Gate:
        """The gate that defines population (or quadrant) id or path `gate_id`."""
        return self.population(gate_id).gate

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p.path for p in self.populations)

    @property
    def is_adaptive(self) -> bool:
        return any(isinstance(g, AdaptiveGate) for g in self.gates)

    def replace_gates(self, gates: Iterable[Gate]) -> GatingStrategy:
        """A new strategy with the given gates replacing those of the same id."""
        new = {g.id: g for g in gates}
        return GatingStrategy(
            [new.pop(g.id, g) for g in self.gates] + list(new.values()),
            matrices=self.matrices,
            name=self.name,
            source=self.source,
            aliases=self.aliases,
        )

    def ancestors(self, gate_id: str) -> set[str]:
        """Ids of every gate that `gate_id`'s membership depends on (parents and operands)."""
        out: set[str] = set()
        todo = list(self._owner[gate_id].references)
        while todo:
            g = self._owner[todo.pop()]
            if g.id not in out:
                out.add(g.id)
                todo.extend(g.references)
        return out

    def digest(self) -> str:
        """A stable hash of the strategy's content (gates, geometry, matrices), for caches.

        It does not depend on the order the gates were given in.
        """
        h = hashlib.sha256()
        for g in sorted(self.gates, key=lambda g: g.id):
            h.update(repr(g).encode())
        for k in sorted(self.matrices):
            m = self.matrices[k]
            h.update(repr((k, m.fluorochromes, m.detectors)).encode())
            h.update(np.ascontiguousarray(m.matrix).tobytes())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self.populations)

    def __repr__(self) -> str:
        src = f" from {self.source!r}" if self.source else ""
        return (
            f"<GatingStrategy{src}: {len(self.gates)} gates, {len(self.populations)} populations>"
        )

    # -- applying ---------------------------------------------------------------------
    def resolver(self, sample: Sample, compensation="file") -> Resolver:
        """Channel/compensation look-ups for `sample` (see `apply` for `compensation`)."""
        return Resolver(
            sample.channels,
            _spillover(sample, compensation),
            self.matrices,
            sample.name,
            self.source or "",
        )

    def compile(self, sample: Sample, compensation="file") -> tuple[K.GatingPlan, dict[str, int]]:
        """The `GatingPlan` for this sample's channels, and population id → plan row.

        Adaptive gates must have been fitted (see `apply`). Plans are cached per
        channel layout and compensation matrix.
        """
        spill = _spillover(sample, compensation)
        key = (
            tuple((c.name, c.marker) for c in sample.channels),
            None if spill is None else (spill.channels, spill.matrix.tobytes()),
        )
        hit = self._plans.get(key)
        if hit is None:
            resolver = Resolver(
                sample.channels, spill, self.matrices, sample.name, self.source or ""
            )
            hit = compile_plan(self.gates, resolver)
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = hit
        return hit

    def fit(self, sample: Sample, *, compensation="file", seed: int = 0) -> GatingStrategy:
        """This strategy with every adaptive gate placed on `sample`'s data.

        Adaptive gates are fitted parents first: each sees the values of its
        dimensions for (a subsample of at most `FIT_EVENTS` of) its parent's
        events. Returns `self` when there is nothing to fit. Each gate that
        had to use its fixed fallback gives one `AdaptiveGateWarning` naming
        the sample and the gate.

        The result is a static strategy, the per-sample form of this one:
        ``fitted.apply(sample)`` gives the counts ``self.apply(sample)`` gives
        (same `compensation` and `seed`), ``fitted.to_gatingml(path)`` writes
        it as Gating-ML 2.0, and `cytokit.gating.flowjo.write` writes fitted
        strategies into a FlowJo workspace (``cytokit export-wsp`` does so for
        a study, with the study's settings: ``study.gate(sample).strategy``).
        """
        if not self.is_adaptive:
            return self
        with collect_fallbacks() as used:
            fitted = self._fit(sample, compensation, seed)
        for message in dict.fromkeys(used):
            warnings.warn(AdaptiveGateWarning(f"{sample.name}: {message}"), stacklevel=3)
        return fitted

    def _fit(self, sample: Sample, compensation, seed: int) -> GatingStrategy:
        rng = np.random.default_rng([seed, _name_seed(sample.name)])
        current = self
        resolver = current.resolver(sample, compensation)
        while True:
            pending = [g for g in current.gates if isinstance(g, AdaptiveGate)]
            if not pending:
                return current
            ready = [
                g
                for g in pending
                if not any(
                    isinstance(current._owner[a], AdaptiveGate) for a in current.ancestors(g.id)
                )
            ]
            parents = sorted({g.parent for g in ready if g.parent is not None})
            masks: dict[str, np.ndarray] = {}
            if parents:
                needed = set(parents)
                for p in parents:
                    needed |= current.ancestors(p)
                sub = [
                    g
                    for g in current.gates
                    if g.id in needed or any(q in needed for q in g.population_ids)
                ]
                plan, rows = compile_plan(sub, current.resolver(sample, compensation))
                _, mem = K.evaluate_plan(sample.events, plan, membership=[rows[p] for p in parents])
                masks = dict(zip(parents, mem, strict=True))
            fitted = []
            for g in ready:
                if g.parent is None:  # the draw of choice(arange(n)), without the arange
                    n = sample.n_events
                    idx = rng.choice(n, FIT_EVENTS, replace=False) if n > FIT_EVENTS else None
                    idx = np.arange(n) if idx is None else np.sort(idx)
                else:
                    idx = np.flatnonzero(masks[g.parent])
                    if idx.size > FIT_EVENTS:
                        idx = np.sort(rng.choice(idx, FIT_EVENTS, replace=False))
                values = dimension_values(sample.events, resolver, g.dims, idx, g.id)
                concrete = g.fit(values, rng)
                if isinstance(concrete, AdaptiveGate) or concrete.id != g.id:
                    raise GatingError(
                        f"adaptive gate {g.id!r} returned {concrete!r}; fit must return a concrete "
                        "gate with the same id"
                    )
                fitted.append(replace(concrete, parent=g.parent, name=g.name))
            current = current.replace_gates(fitted)

    def apply(
        self,
        sample: Sample,
        *,
        compensation="file",
        membership: bool = True,
        seed: int = 0,
    ):
        """Gate one sample.

        Parameters
        ----------
        sample : Sample
            Scale values (``read_fcs(..., scale=True)``, the default). Stored values
            (``scale=False``) are refused where a channel the gates read would differ
            ($PnE log amplification, $PnG gain, the Time channel's $TIMESTEP).
        compensation : "file", None, "none" or Spillover
            What `FCS` dimensions use: the sample's own spillover keyword
            ("file", default), no compensation (None/"none"), or a given matrix.
        membership : bool
            Keep every population's membership (bit-packed: n_events/8 bytes a
            population) so `GatingResult.membership` works; False keeps counts only.
        seed : int
            Seed for adaptive gates' subsampling (combined with the sample name).

        Returns
        -------
        GatingResult

        Warns
        -----
        AdaptiveGateWarning
            An adaptive gate used its fixed fallback (one per gate, naming the sample).
        SpilloverWarning
            A matrix the gates compensate with has a condition number above
            `cytokit.sample.MAX_SPILLOVER_CONDITION` (the message names its
            nearly proportional rows).
        """
        from cytokit.gating.result import GatingResult

        if not isinstance(sample, Sample):
            raise GatingError(f"apply needs a cytokit Sample, got {type(sample).__name__}")
        if not sample.scaled:
            _refuse_stored_values(sample, self.read_columns(sample, compensation=compensation))
        concrete = self.fit(sample, compensation=compensation, seed=seed)
        plan, rows = concrete.compile(sample, compensation)
        for message in concrete._conditioning(sample, compensation):
            warnings.warn(SpilloverWarning(message), stacklevel=2)
        order = np.array([rows[p.id] for p in concrete.populations], dtype=np.int64)
        counts, packed = K.evaluate_plan(
            sample.events, plan, membership=order if membership else False, packed=True
        )
        return GatingResult(
            strategy=concrete,
            sample=sample,
            counts_array=counts[order],
            packed=packed,
            compensation=_spillover(sample, compensation),
        )

    def apply_file(
        self,
        path: str | Path,
        *,
        dataset: int | None = None,
        compensation="file",
        block_events: int | None = None,
    ):
        """Gate one FCS file while reading it: the counts of ``apply(read_fcs(path))``.

        The events are read in slices of `block_events` rows, each gated by
        the fused pass as soon as it is read, on several threads at once
        (`cytokit.gating.stream`): no array of the whole file, and reading
        overlaps gating.
        The counts are those of ``self.apply(cytokit.read_fcs(path,
        dataset=dataset), compensation=compensation, membership=False)``,
        exactly: the same values (decoding, scaling, ``$TIMESTEP``), plan,
        compensation and transforms, non-finite values kept as `apply`
        keeps them.

        Parameters
        ----------
        path : str or path-like
            An FCS file (see `cytokit.read_fcs`).
        dataset : int
            Which data set of the file (0 = the first).
        compensation : "file", None, "none" or Spillover
            As for `apply`.
        block_events : int, optional
            Events per slice (default `cytokit.gating.stream.BLOCK_EVENTS`,
            262,144; rounded to the reader's granularity).

        Returns
        -------
        GatingResult
            Counts only (``packed`` is None). Its ``sample`` holds the file's
            channels, keywords and spillover; its events are read from the
            file when first asked for (``result.sample.events``,
            `GatingResult.nonfinite_events`, `GatingResult.values`).

        Raises
        ------
        GatingError
            The strategy has an adaptive gate (it is fitted on the whole
            file; use `apply`, or `fit` once and stream with the result); the
            file lacks a channel a gate reads.
        FCSError
            As `cytokit.read_fcs`.
        """
        from cytokit.gating.stream import BLOCK_EVENTS, apply_file

        return apply_file(
            self,
            path,
            dataset=dataset,
            compensation=compensation,
            block_events=BLOCK_EVENTS if block_events is None else block_events,
        )

    def read_columns(
        self, sample: Sample, dims: Iterable[Dimension] = (), *, compensation="file"
    ) -> tuple[int, ...]:
        """Columns of `sample` the gates (and the extra `dims`) read, ascending.

        A compensated dimension reads every column its inverse spillover row
        mixes in (`cytokit.gating.compile.dimension_columns`), so a NaN in one
        detector counts for every dimension it spreads into. Adaptive gates
        read their fitting dimensions.
        """
        resolver = self.resolver(sample, compensation)
        cols: set[int] = set()
        for g in self.gates:
            for d in g.dimensions:
                cols |= dimension_columns(resolver, d, g.id)
        for d in dims:
            cols |= dimension_columns(resolver, d)
        return tuple(sorted(cols))

    def _conditioning(self, sample: Sample, compensation) -> list[str]:
        """What is wrong with each matrix the gates compensate with (`spillover_conditioning`)."""
        used = {d.compensation for g in self.gates for d in g.dimensions}
        out = []
        spill = _spillover(sample, compensation) if FCS in used else None
        if spill is not None:
            why = spillover_conditioning(spill.matrix, spill.channels)
            if why:
                source = spill.source or "given"
                out.append(f"{sample.name}: the spillover matrix ({source}) has {why}")
        for ref in sorted(used & set(self.matrices)):
            m = self.matrices[ref]
            if m.matrix.shape[0] == m.matrix.shape[1]:
                why = spillover_conditioning(m.matrix, m.fluorochromes)
                if why:
                    out.append(f"{sample.name}: spectrum matrix {ref!r} has {why}")
        return out

    def values(
        self, sample: Sample, dims: Iterable[Dimension], rows=None, *, compensation="file"
    ) -> np.ndarray:
        """The values the gates see on `dims` for events `rows` (float64, (n, len(dims)))."""
        return dimension_values(
            sample.events, self.resolver(sample, compensation), list(dims), rows
        )

    # -- files ------------------------------------------------------------------------
    def to_gatingml(self, path: str | Path) -> Path:
        """Write this strategy as a Gating-ML 2.0 document."""
        from cytokit.gating.gatingml.write import write_gatingml

        return write_gatingml(self, path)


def _name_seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def _spillover(sample: Sample, compensation) -> Spillover | None:
    if isinstance(compensation, Spillover):
        return compensation
    if compensation is None or (isinstance(compensation, str) and compensation.lower() == "none"):
        return None
    if isinstance(compensation, str) and compensation.lower() == "file":
        return sample.spillover
    raise GatingError(
        f"compensation={compensation!r}: use 'file' (the sample's spillover keyword), "
        "None / 'none', or a cytokit.Spillover"
    )


def _names(g: Gate) -> list[tuple[str, str]]:
    """(id, name) of each population `g` defines."""
    if isinstance(g, QuadrantGate):
        return [(q.id, q.name) for q in g.quadrants]
    return [(g.id, g.name)]


def _topological(gates: list[Gate], owner: dict[str, Gate], where: str) -> list[Gate]:
    """Gates ordered so that every gate comes after the gates it refers to (stable).

    A depth-first walk with its own stack, so a chain of references of any
    length is ordered (and a cycle found) without Python recursion.
    """
    out: list[Gate] = []
    state: dict[int, int] = {}  # id(gate): 1 on the current trail, 2 placed
    for start in gates:
        if id(start) in state:
            continue
        trail = [start]
        todo = [iter(start.references)]
        state[id(start)] = 1
        while trail:
            ref = next(todo[-1], None)
            if ref is None:
                done = trail.pop()
                todo.pop()
                state[id(done)] = 2
                out.append(done)
                continue
            g = owner[ref]
            seen = state.get(id(g))
            if seen == 2:
                continue
            if seen == 1:
                ids = [t.id for t in trail[trail.index(g) :]] + [g.id]
                if len(ids) > 9:
                    ids = [*ids[:4], f"… ({len(ids) - 7:,} more)", *ids[-3:]]
                cycle = " → ".join(shorten(i, 40) for i in ids)
                raise GatingError(f"strategy{where}: gates refer to each other in a cycle: {cycle}")
            state[id(g)] = 1
            trail.append(g)
            todo.append(iter(g.references))
    return out

"""cytokit's own gating-strategy format: a short YAML file a lab writes by hand.

A strategy is a tree of named gates; every population's path is built from
the names (``/Lymphocytes/Singlets/Live/CD3-CD56+``). Channels are named by
marker through a panel (``CD3`` means the channel the file's ``panel:`` or the
study's ``[panel]`` gives for CD3) or by ``$PnN``/``$PnS`` (a name no panel
maps is looked up in each FCS file, ``$PnN`` first). Gate positions are in the
units the gate sees: compensated and transformed values for fluorescence (0–1
on the default logicle scale), raw values for scatter, so a file whose gates
read fluorescence states its transform (or is given one). Example::

    name: NK and CIK monitoring
    transform: {type: logicle, T: 262144, W: 0.5, M: 4.5, A: 0}
    gates:
      - name: Beads
        cluster: [FSC-A, SSC-A]        # adaptive: the cluster nearest `near`
        near: [20000, 60000]
      - name: Lymphocytes
        cluster: [FSC-A, SSC-A]
        near: [58000, 14000]
        distance: 5.5
        gates:
          - name: Singlets
            singlets: [FSC-A, FSC-H]   # adaptive: band around the FSC-H ∝ FSC-A line
            gates:
              - name: Live
                threshold: Viability   # adaptive: density valley
                keep: below
                between: [0.3, 0.7]
                single: negative
                gates:
                  - quadrants:          # adaptive quadrants: CD3-CD56-, CD3-CD56+, ...
                      CD3: {between: [0.25, 0.6]}
                      CD56: {between: [0.3, 0.6], split_by: CD3}
                    gates:
                      CD3-CD56+:        # children of one quadrant
                        - quadrants: {CD56: {between: [0.6, 0.85]}}
                          names: {CD56-: CD56dim, CD56+: CD56bright}
      - name: Fixed box
        range: {FSC-A: [20000, null], SSC-A: [null, 50000]}

Top-level keys
--------------
``gates`` (required): the list of gates. ``name``: the strategy's name.
``transform``: the transform of fluorescence dimensions, as a type
(``logicle``; ``none`` when gate positions are compensated scale values) or a
table (``{type: logicle, T: 262144, W: 0.5, M: 4.5, A: 0}``, the form of
study.toml's ``[transform]``); a sub-table named after a marker or channel
overrides it for that one (``CD56: {type: logicle, W: 1}``), the only way to
transform scatter. An override follows the channel: a gate naming it by its
other name (the detector the panel maps the marker to) gets it too, and two
overrides of one channel must agree. ``panel``: marker → channel (exact ``$PnN`` or ``$PnS``),
for markers the FCS files do not name in ``$PnS``. ``compensation``: of
fluorescence dimensions, ``FCS`` (default: the file's spillover),
``uncompensated`` or the id of a matrix in ``matrices`` (``{id:
{fluorochromes: [...], detectors: [...], matrix: [[...]]}}``); a table maps
channels to compensations. Scatter and time (names starting FSC, SSC, FS, SS;
``Time``) are uncompensated and untransformed unless named in such a table.

Every fluorescence dimension needs a transform: its own or its gate's, else
the file's ``transform``, else the reader's ``transform=`` option (a study
passes its ``[transform]``; ``cytokit gate --study DIR`` too); with none of
them the file does not load (`GatingError` saying what to add). Where the
file's ``transform`` and the option both give a dimension one, they must be
the same, and likewise a marker in both the file's ``panel`` and the
reader's ``panel=`` (the study's ``[panel]``): gate positions and channels
mean one thing, whichever way the strategy is loaded.

Every gate
----------
``name`` (its population's name; quadrant gates name their quadrants instead),
``id`` (default: the path), ``gates`` (children: a list; for quadrant gates a
table from quadrant name to list), ``parent`` (instead of nesting, in a flat
top-level list: a path, or a name that is unique), ``transform`` and
``compensation`` (for this gate's dimensions: one value, or a table by
dimension). A dimension is a marker or channel name, or a table
``{channel: CD3, transform: ..., compensation: ...}``, or a ratio
``{ratio: [FSC-H, FSC-A], name: FSC ratio, A: 1, B: 0, C: 0}``.

Exactly one shape key per gate:

``range`` (or ``rectangle``)
    ``{CD3: [0.45, null]}``: per dimension ``[min, max]``, min inclusive, max
    exclusive, ``null`` open.
``polygon``
    ``[X, Y]`` with ``vertices: [[x, y], ...]`` (even–odd rule).
``ellipse``
    dimensions with ``mean``, ``covariance`` and ``distance_square`` (default
    1); or, in two dimensions, ``center``, ``axes: [a, b]`` (half-axes) and
    ``angle`` (degrees, of the first axis from X).
``quadrants``
    a table by dimension: a number (fixed divider), ``auto`` or a table of
    valley settings (adaptive). Quadrants are named by joining each
    dimension's name and side (``CD3-CD56+``); ``names`` renames them.
``and``, ``or``, ``not``
    references to other populations (path, relative path, id or unique
    name); ``{not: X}`` as an operand of ``and``/``or`` takes X's complement.
``threshold``
    one dimension cut at its density valley; ``keep: above`` (default) or
    ``below`` and the valley settings.
``singlets``
    ``[FSC-A, FSC-H]``; ``width`` (robust sd, default 4), ``ratio: [low,
    high]`` (bounds of FSC-H/FSC-A), ``fallback: [low, high]``.
``cluster``
    dimensions, ``near`` (expected centre), ``distance`` (Mahalanobis radius,
    default 4), ``core``, ``within: [[low, high], ...]``, ``scale``
    (``log``/``linear`` per dimension), ``fallback`` (a fixed shape:
    ``{polygon: [[x, y], ...]}``, ``{range: [[min, max], ...]}`` or
    ``{ellipse: {...}}``).

Valley settings (``threshold`` and adaptive ``quadrants``): ``between: [low,
high]`` (where the threshold may lie), ``fallback`` (fixed threshold when the
data do not allow a fit; without one the gate raises), ``single``
(``negative``, ``positive``, ``auto``, ``none``: what a lone mode is),
``spread``, ``smooth``, ``min_peak``, ``max_valley``, ``min_events``; for
quadrants also ``split_by: CD3`` (two dividers: one fitted on and used for
the events below the CD3 divider, one above). `cytokit.gating.adaptive` describes the algorithms.

Errors are `GatingError`\\ s naming the file, the line and the fix. The file is
read with YAML's safe loader (plain data only; no tags that build objects),
within the bounds of `cytokit.gating.limits`: at most 8 MiB, lists and tables
nested at most 320 levels, at most a million values once aliases (``*name``)
and merges (``<<``) are expanded (an alias may not refer to a node it is
inside), integers within 64 bits, and the gate tree's own bounds.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cytokit.errors import GatingError
from cytokit.gating.limits import (
    MAX_INTEGER,
    MAX_YAML_NESTING,
    MAX_YAML_VALUES,
    read_bounded,
    shorten,
)
from cytokit.gating.strategy import GatingStrategy
from cytokit.gating.transforms import Transform
from cytokit.gating.yamlfmt import gates as _yamlgates

__all__ = ["read_yaml_strategy", "write_yaml_strategy"]


class _Map(dict):
    """A mapping that remembers where it and each of its values start in the file."""

    mark: Any = None
    marks: dict

    def line(self, key=None) -> int:
        m = self.marks.get(key, self.mark) if key is not None else self.mark
        return 0 if m is None else m.line + 1


class _Seq(list):
    """A sequence that remembers where it and each of its items start."""

    mark: Any = None
    marks: list

    def line(self, i=None) -> int:
        m = self.marks[i] if i is not None and i < len(self.marks) else self.mark
        return 0 if m is None else m.line + 1


class _Loader(yaml.SafeLoader):
    """The safe loader, with line marks kept on mappings and sequences, within bounds.

    Nesting is counted as the parser hands out events, before the composer
    recurses into a new list or table (and flow brackets as they are scanned);
    the size of the document with its
    aliases expanded is counted on the composed node graph, before anything is
    constructed; mappings and sequences are filled breadth-first (not by
    recursion), and integers are checked before they are converted.
    """

    def __init__(self, text: str, path: Path) -> None:
        super().__init__(text)
        self.path = path
        self.nesting = 0

    def refuse(self, mark, message: str) -> GatingError:
        where = f", line {mark.line + 1}" if mark is not None else ""
        return GatingError(f"{self.path}{where}: {message}")

    def fetch_flow_collection_start(self, token_class):
        # the scanner reads ahead of the parser, and its cost grows with the flow nesting
        # it has open: flow brackets are counted here too, so they are refused early
        if self.flow_level >= MAX_YAML_NESTING:
            raise self.too_deep(self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def too_deep(self, mark) -> GatingError:
        return self.refuse(
            mark,
            f"lists and tables are nested more than {MAX_YAML_NESTING} levels deep here; "
            f"cytokit reads YAML strategies nested at most {MAX_YAML_NESTING} levels: give "
            "deep gates a parent: in the top-level list instead of nesting",
        )

    def get_event(self):
        event = super().get_event()
        if isinstance(event, yaml.CollectionStartEvent):
            self.nesting += 1
            if self.nesting > MAX_YAML_NESTING:
                raise self.too_deep(event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            self.nesting -= 1
        return event

    def construct_document(self, node):
        _check_expansion(node, self)
        return super().construct_document(node)


def _kids(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node, loader: _Loader) -> None:
    """Refuse a node graph whose aliases expand it beyond `MAX_YAML_VALUES` nodes, or loop.

    Each node's expanded size (itself and everything under it, an alias
    counting the whole node it names) is found once, depth-first with a stack
    of its own; a node met again while its own size is being found is inside
    itself, which no strategy can mean.
    """
    size: dict[int, int] = {}
    pending: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            pending.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in _kids(node))
            if size[key] > MAX_YAML_VALUES:
                raise loader.refuse(
                    node.start_mark,
                    f"with its aliases (*name) and merges (<<) expanded, the part that starts "
                    f"here holds {size[key]:,} values or more; cytokit reads YAML strategies of "
                    f"at most {MAX_YAML_VALUES:,} values: write the values out, or use fewer "
                    "aliases",
                )
            continue
        if key in size:
            continue
        if key in pending:
            raise loader.refuse(
                node.start_mark,
                "an alias (*name) refers to a list or table it is inside, which would be "
                "endless; give the values instead",
            )
        pending.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _kids(node) if id(k) not in size)


def _construct_map(loader: _Loader, node: yaml.MappingNode):
    out = _Map()
    out.mark, out.marks = node.start_mark, {}
    yield out  # filled after its parent, so that nesting costs no recursion
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            )
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one table", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node)
        out.marks[key] = value_node.start_mark


def _construct_seq(loader: _Loader, node: yaml.SequenceNode):
    out = _Seq()
    out.mark, out.marks = node.start_mark, [child.start_mark for child in node.value]
    yield out
    out.extend(loader.construct_object(child) for child in node.value)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = str(node.value)
    # 64 bits take at most 66 characters (0b and 64 binary digits); longer text is not
    # converted at all, so a number of thousands of digits costs nothing
    value = None if len(text) > 80 else loader.construct_yaml_int(node)
    if value is None or abs(value) > MAX_INTEGER:
        raise loader.refuse(
            node.start_mark,
            f"the integer {shorten(text, 40)} ({len(text):,} characters) is beyond 64 bits; "
            f"cytokit reads integers of at most {MAX_INTEGER:,} in magnitude",
        )
    return value


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _load(path: Path) -> Any:
    try:
        text = read_bounded(path, "yaml").decode("utf-8")
    except FileNotFoundError:
        raise GatingError(f"{path}: strategy file not found") from None
    except UnicodeDecodeError as exc:
        raise GatingError(f"{path}: not UTF-8 text ({exc}); save it as UTF-8") from None
    except OSError as exc:
        raise GatingError(f"{path}: cannot read the strategy file ({exc.strerror})") from None
    loader = _Loader(text, path)  # a SafeLoader: plain data only
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}" if mark is not None else ""
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        start = exc.context_mark
        if start is not None and mark is not None and start.line != mark.line:
            what += f" (in the part that starts at line {start.line + 1})"
        raise GatingError(
            f"{path}{where}: not valid YAML: {what}. Check the indentation, brackets and "
            "quoting there"
        ) from None
    except yaml.YAMLError as exc:
        raise GatingError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        # the nesting bound keeps reading far from Python's stack limit; a caller already
        # deep in recursion of its own could still meet it
        raise GatingError(
            f"{path}: nested too deeply to read {loader.nesting} levels in, with Python's "
            f"recursion limit at {sys.getrecursionlimit()}; nest less, using parent:"
        ) from None
    finally:
        loader.dispose()


def read_yaml_strategy(
    path: str | Path,
    *,
    panel=None,
    transform=None,
    compensation: str | None = None,
    **options,
) -> GatingStrategy:
    """Read a cytokit YAML gating strategy (format in the module docstring).

    Parameters
    ----------
    path : path
        The ``.yaml``/``.yml`` file.
    panel : cytokit.Panel or mapping of str to str, optional
        Marker → channel (``$PnN`` or ``$PnS``, exact names: a panel pattern
        cannot be resolved without a sample), merged with the file's
        ``panel:`` (a marker both name must map to the same channel). Names in
        neither are channel names, looked up in each sample's ``$PnN`` then
        ``$PnS``.
    transform : Transform or mapping, optional
        Transform of fluorescence dimensions whose gates and the file give
        none: a `Transform`, or a table like study.toml's ``[transform]``
        (sub-tables named after markers override it for those). Where the
        file's ``transform:`` also covers a dimension, the two must agree.
    compensation : str, optional
        Default compensation of fluorescence dimensions when the file gives
        none (default ``FCS``).
    **options
        Accepted from `load_strategy` callers that pass options meant for
        other formats only if they are None; anything else is an error.

    Returns
    -------
    GatingStrategy

    Raises
    ------
    GatingError
        Malformed YAML, unknown keys, bad values, unknown references, a
        fluorescence dimension without a transform, the file and the options
        disagreeing on a transform or a marker's channel; the message names
        the file and line.
    """
    path = Path(path)
    extra = sorted(k for k, v in options.items() if v is not None)
    if extra:
        raise GatingError(
            f"{path}: read_yaml_strategy takes panel=, transform= and compensation=; "
            f"got {', '.join(extra)}"
        )
    doc = _load(path)
    if not isinstance(doc, _Map):
        raise GatingError(
            f"{path}: a strategy file is a table with a 'gates' list at the top, e.g.\n"
            "gates:\n  - name: Lymphocytes\n    ..."
        )
    markers = _panel_channels(panel, path)
    reader = _yamlgates.Reader(
        path=str(path),
        panel=markers,
        option_transform=_option_transform(transform, path),
        option_compensation=compensation,
    )
    gates, matrices, name = reader.read(doc)
    try:
        return GatingStrategy(gates, matrices=matrices, name=name, source=str(path))
    except GatingError as exc:
        raise GatingError(f"{exc}. Check the gates in {path}") from None


def _panel_channels(panel, path: Path) -> dict[str, str]:
    if panel is None:
        return {}
    table = getattr(panel, "markers", panel)
    if not isinstance(table, Mapping):
        raise GatingError(
            f"{path}: panel= must be a cytokit.Panel or a mapping marker → channel, "
            f"got {type(panel).__name__}"
        )
    out = {}
    for marker, channel in table.items():
        if not isinstance(channel, str) or _yamlgates.PANEL_PATTERN.search(channel):
            raise GatingError(
                f"{path}: panel entry {marker} = {channel!r} is a pattern; a strategy file "
                "needs the channel's exact $PnN or $PnS. Write it out in [panel]"
            )
        out[str(marker)] = channel
    return out


def _option_transform(transform, path: Path) -> _yamlgates.TransformTable | None:
    """The reader's ``transform=`` as a `TransformTable` (None: not given)."""
    if transform is None:
        return None
    if isinstance(transform, Transform):
        return _yamlgates.TransformTable(transform, {}, True)
    if not isinstance(transform, Mapping):
        raise GatingError(
            f"{path}: transform= must be a Transform or a table like study.toml's "
            f"[transform], got {type(transform).__name__}"
        )
    return _yamlgates.transform_table(transform, f"{path}: transform= option")


def write_yaml_strategy(strategy: GatingStrategy, path: str | Path) -> Path:
    """Write `strategy` in cytokit's YAML format (every dimension spelled out).

    Channels are written as the gates name them; compensation and transforms
    are written on each gate, so the file reads back to the same gates
    whatever the reader's options. Adaptive gates of `cytokit.gating.adaptive`
    are written with their settings.

    Returns
    -------
    Path
    """
    from cytokit.gating.yamlfmt.writer import dump_strategy

    path = Path(path)
    text = dump_strategy(strategy)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path

"""The population trees of a FlowJo workspace, and the gating strategies built from them.

FlowJo keeps one gating tree per sample (``SampleNode``) and one template per
group (``GroupNode``). A tree is nested ``Population`` elements (each with one
``Gate``) and Boolean ``AndNode``/``OrNode``/``NotNode`` elements whose
operands (``Dependent name="A/B/C"``) are population paths from the root.
FlowJo evaluates a Boolean node inside its parent population, which is what a
cytokit `BooleanGate` with a parent does; the copy of an operand's gate that
FlowJo writes inside a ``NotNode`` is ignored.

In the strategy built here, a population's gate id is its path
(``/Lymphocytes/Singlets``), so the same tree in several samples has the same
ids, and its name is FlowJo's population name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cytokit.errors import GatingError
from cytokit.gating.flowjo.gates import gate_from_element
from cytokit.gating.flowjo.xml import Element, child, children, where
from cytokit.gating.gates import BooleanGate, Gate
from cytokit.gating.limits import MAX_DEPTH, MAX_PATH_LENGTH, MAX_POPULATIONS
from cytokit.gating.strategy import GatingStrategy

__all__ = [
    "Issue",
    "Node",
    "WorkspacePopulation",
    "build_strategy",
    "build_tree",
    "parse_nodes",
    "populations",
    "walk",
]

_BOOLEAN = {"AndNode": "and", "OrNode": "or", "NotNode": "not"}
NODE_TAGS = ("Population", *_BOOLEAN)


@dataclass(frozen=True)
class Issue:
    """Something in a workspace cytokit cannot reproduce.

    Attributes
    ----------
    owner : str
        ``"sample '<name>'"`` or ``"group '<name>'"``.
    path : str
        Population path ("" for the owner as a whole).
    element : str
        The XML element at fault.
    line : int
        Its line in the workspace.
    reason : str
    """

    owner: str
    path: str
    element: str
    line: int
    reason: str

    def __str__(self) -> str:
        at = f" population {self.path!r}" if self.path else ""
        return f"{self.owner}{at} (<{self.element}> at line {self.line}): {self.reason}"


@dataclass(frozen=True)
class WorkspacePopulation:
    """One population of a FlowJo tree, as the workspace describes it.

    Attributes
    ----------
    path : str
        ``/A/B/C`` (FlowJo's names joined by ``/``).
    name : str
    node : str
        ``Population``, ``AndNode``, ``OrNode`` or ``NotNode``.
    gate_type : str
        ``RectangleGate``, ``PolygonGate``, ``EllipsoidGate``... for a
        Population; ``and``/``or``/``not`` for Boolean nodes.
    count : int or None
        FlowJo's event count (None where FlowJo did not compute one).
    owning_group : str
        The group whose template the gate comes from ("" for a sample's own).
    line : int
    """

    path: str
    name: str
    node: str
    gate_type: str
    count: int | None
    owning_group: str
    line: int


@dataclass(eq=False)
class Node:
    """A population element of a workspace tree (parsed, not yet converted)."""

    name: str
    kind: str
    element: Element
    gate: Element | None
    dependents: tuple[str, ...]
    count: int | None
    owning_group: str
    children: list[Node] = field(default_factory=list)

    @property
    def gate_type(self) -> str:
        if self.kind in _BOOLEAN:
            return _BOOLEAN[self.kind]
        return self.gate.tag if self.gate is not None else ""


def count_of(el: Element) -> int | None:
    """FlowJo's ``count`` of a node (None when missing or negative: not computed)."""
    try:
        n = int(float(el.get("count", "-1")))
    except ValueError:
        return None
    return n if n >= 0 else None


def build_tree(
    top: Iterable[Element],
    below: Callable[[Element], Iterable[Element]],
    make: Callable[[Element], Node],
    path: Path | str,
) -> list[Node]:
    """The nodes made (by `make`) of the elements `top` and, through `below`, their descendants.

    The tree is walked with a stack of its own, not Python recursion, and
    refused with a `GatingError` naming the element and its line when it goes
    beyond the bounds of `cytokit.gating.limits`: deeper than `MAX_DEPTH`, more
    than `MAX_POPULATIONS` populations, or a path longer than `MAX_PATH_LENGTH`.
    """
    roots: list[Node] = []
    count = 0
    # (element, the list its node joins, its depth, the length of its parent's path)
    stack = [(el, roots, 1, 0) for el in reversed(list(top))]
    while stack:
        el, siblings, depth, base = stack.pop()
        node = make(el)
        count += 1
        length = base + 1 + len(node.name)
        problem = ""
        if depth > MAX_DEPTH:
            problem = (
                f"this population is at level {depth} of the tree; cytokit reads trees of at "
                f"most {MAX_DEPTH} levels, far above any real one"
            )
        elif count > MAX_POPULATIONS:
            problem = (
                f"the tree has more than {MAX_POPULATIONS:,} populations; cytokit reads trees "
                f"of at most {MAX_POPULATIONS:,} populations, far above any real one"
            )
        elif length > MAX_PATH_LENGTH:
            problem = (
                f"the population's path is {length:,} characters long; cytokit reads paths of "
                f"at most {MAX_PATH_LENGTH:,}: shorten the population names in FlowJo"
            )
        if problem:
            raise GatingError(f"{where(path, el)}: {problem}")
        siblings.append(node)
        stack.extend((c, node.children, depth + 1, length) for c in reversed(list(below(el))))
    return roots


def _subpopulations(el: Element) -> list[Element]:
    sub = child(el, "Subpopulations")
    return [] if sub is None else [c for c in sub if c.tag in NODE_TAGS]


def _node(el: Element) -> Node:
    gate = None
    gate_el = child(el, "Gate")
    if el.tag == "Population" and gate_el is not None:
        gate = next(iter(gate_el), None)
    deps: tuple[str, ...] = ()
    if el.tag in _BOOLEAN:
        d = child(el, "Dependents")
        deps = tuple(x.get("name", "") for x in children(d, "Dependent")) if d else ()
    return Node(
        name=el.get("name", ""),
        kind=el.tag,
        element=el,
        gate=gate,
        dependents=deps,
        count=count_of(el),
        owning_group=el.get("owningGroup", ""),
    )


def parse_nodes(container: Element | None, path: Path | str) -> list[Node]:
    """The population tree of a ``<SampleNode>`` or ``<GroupNode>`` (`container`), parsed.

    Raises
    ------
    GatingError
        The tree is beyond the bounds of `cytokit.gating.limits` (see `build_tree`).
    """
    if container is None:
        return []
    return build_tree(_subpopulations(container), _subpopulations, _node, path)


def walk(nodes: list[Node]) -> Iterator[tuple[Node, str, str]]:
    """(node, its path, its parent's path or "") of every node, parents first, in file order."""
    stack = [(n, "") for n in reversed(nodes)]
    while stack:
        n, base = stack.pop()
        path = f"{base}/{n.name}"
        yield n, path, base
        stack.extend((c, path) for c in reversed(n.children))


def populations(nodes: list[Node]) -> tuple[WorkspacePopulation, ...]:
    """Every population of a tree, parents first."""
    return tuple(
        WorkspacePopulation(
            path, n.name, n.kind, n.gate_type, n.count, n.owning_group, n.element.line
        )
        for n, path, _ in walk(nodes)
    )


def name_problem(name: str) -> str:
    """Why `name` cannot be a population name in a path ("" when it can)."""
    if not name.strip():
        return "the population has no name"
    if name in (".", ".."):
        return (
            f"a population named {name!r} cannot be told apart from a path step "
            "('.' and '..' mean this and the parent population); rename it in FlowJo"
        )
    if "/" in name:
        return f"the name {name!r} contains '/', which separates path steps; rename it in FlowJo"
    return ""


def _operand(dep: str, parent: str, known: set[str]) -> str | None:
    dep = dep.strip()
    for cand in ("/" + dep.lstrip("/"), f"{parent}/{dep}"):
        if cand in known:
            return cand
    return None


def build_strategy(
    nodes: list[Node],
    axes,
    *,
    path: Path,
    owner: str,
    name: str,
    skip_unsupported: bool = False,
    convert=gate_from_element,
) -> tuple[GatingStrategy, list[Issue]]:
    """The `GatingStrategy` of one tree and what could not be converted.

    With `skip_unsupported`, a population that cannot be converted is left out
    with everything below it (and Boolean gates that use it), and reported in
    the returned issues; otherwise the first one raises `GatingError`.
    `convert` makes a gate of a node's gate element (FlowJo 10 by default).
    """
    issues: list[Issue] = []
    where = f"{Path(path).name}: {owner}"

    def problem(node: Node, p: str, reason: str, el: Element | None = None) -> None:
        el = el if el is not None else node.element
        issue = Issue(owner, p, el.tag, el.line, reason)
        if not skip_unsupported:
            raise GatingError(f"{where}, population {p!r} (<{el.tag}> at line {el.line}): {reason}")
        issues.append(issue)

    entries: list[tuple[Node, str, str | None]] = []
    seen: dict[str, Node] = {}

    # parents first, in file order; a population left out takes its subtree with it
    stack = [(n, "") for n in reversed(nodes)]
    while stack:
        n, base = stack.pop()
        p = f"{base}/{n.name}"
        why = name_problem(n.name)
        if why:
            problem(n, p, why)
            continue
        if p in seen:
            problem(
                n,
                p,
                f"two populations have this path (the other at line "
                f"{seen[p].element.line}); rename one in FlowJo",
            )
            continue
        seen[p] = n
        entries.append((n, p, base or None))
        stack.extend((c, p) for c in reversed(n.children))

    known = {p for _, p, _ in entries}
    gates: dict[str, Gate] = {}
    for n, p, parent in entries:
        if parent is not None and parent not in gates:
            continue  # its parent was left out
        label = f"{owner}, population {p!r}"
        try:
            if n.kind in _BOOLEAN:
                ops = []
                for dep in n.dependents:
                    ref = _operand(dep, parent or "", known)
                    if ref is None:
                        raise GatingError(
                            f"{where}, population {p!r} (<{n.kind}> at line {n.element.line}): "
                            f"operand {dep!r} is not a population of this tree"
                        )
                    ops.append(ref)
                gates[p] = BooleanGate(
                    id=p, parent=parent, name=n.name, op=_BOOLEAN[n.kind], operands=tuple(ops)
                )
            elif n.gate is None:
                raise GatingError(
                    f"{where}, population {p!r} (<Population> at line {n.element.line}): "
                    "the population has no gate"
                )
            else:
                gates[p] = convert(n.gate, axes, path, label, id=p, parent=parent, name=n.name)
        except GatingError as exc:
            if not skip_unsupported:
                raise
            issues.append(Issue(owner, p, (n.gate or n.element).tag, n.element.line, str(exc)))
    # Drop gates whose parent or operand was left out, until nothing changes.
    changed = True
    while changed:
        changed = False
        for p, g in list(gates.items()):
            if any(r not in gates for r in g.references):
                del gates[p]
                issues.append(
                    Issue(owner, p, "Dependent", 0, "left out: it uses a population left out")
                )
                changed = True
    strategy = GatingStrategy(gates.values(), matrices=axes.matrices, name=name, source=str(path))
    return strategy, issues

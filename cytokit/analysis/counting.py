"""Absolute counts: cells per µL of blood from event counts.

Every method turns events into cells/µL with one factor per sample,
``cells/µL = events × reference_per_ul / reference_events``:

* **beads** (single platform; ``[counting] beads`` names the bead gate and the
  manifest gives ``beads_per_test`` and ``sample_volume_ul``): the reference
  is the bead gate, at ``beads_per_test / sample_volume_ul`` beads per µL of
  blood, so ``cells/µL = events / bead_events × beads_per_test /
  sample_volume_ul`` (as for BD Trucount tubes).
* **lymphocytes** (dual platform; manifest ``lymphocytes_per_ul`` from a
  haematology analyser): the reference population is ``[counting]
  lymphocytes``, by default the chimerism threshold parent (the deepest gate
  holding every study population, e.g. live single lymphocytes), since that
  is what the analyser counts as lymphocytes.
* **wbc** (dual platform; manifest ``wbc_per_ul``): the reference population
  is ``[counting] leukocytes`` (a CD45+ leukocyte gate); there is no default,
  as a lymphocyte gate is not a leukocyte gate.

A sample uses the first that applies, in that order: beads when the bead gate
has events and the manifest row has both bead numbers; then lymphocytes; then
wbc. A sample with none has no absolute counts (empty ``per_ul``). The method
used is ``count_method`` in samples.csv. Donor cells/µL are donor events times
the same factor.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CountBasis", "count_basis"]


@dataclass(frozen=True)
class CountBasis:
    """How one sample's events become cells/µL.

    Attributes
    ----------
    method : str
        ``beads``, ``lymphocytes``, ``wbc``, or '' (no absolute counts).
    reference : str
        Gate path of the reference population ('' when none).
    reference_events : int
    reference_per_ul : float
        Reference particles per µL of blood.
    note : str
        Why a preferred method was not used.
    """

    method: str = ""
    reference: str = ""
    reference_events: int = 0
    reference_per_ul: float = float("nan")
    note: str = ""

    @property
    def factor(self) -> float:
        """Cells/µL per event (NaN without a basis)."""
        if not self.method or self.reference_events <= 0:
            return float("nan")
        return self.reference_per_ul / self.reference_events

    def per_ul(self, events) -> float:
        """`events` in cells/µL (NaN without a basis)."""
        return float(events) * self.factor


def count_basis(
    row,
    counts: dict[str, int],
    *,
    beads: str = "",
    lymphocytes: str = "",
    leukocytes: str = "",
) -> CountBasis:
    """Choose and build the counting basis of one sample (see the module docstring).

    Parameters
    ----------
    row : ManifestRow
        Gives beads_per_test, sample_volume_ul, lymphocytes_per_ul, wbc_per_ul.
    counts : dict of str to int
        Events per gate path in this sample.
    beads, lymphocytes, leukocytes : str
        Gate paths ('' when not configured).

    Returns
    -------
    CountBasis
    """
    notes = []
    if beads:
        have = row.beads_per_test is not None and row.sample_volume_ul is not None
        n = counts.get(beads, 0)
        if have and n > 0 and row.sample_volume_ul > 0:
            return CountBasis("beads", beads, n, row.beads_per_test / row.sample_volume_ul)
        if not have:
            notes.append(
                "no beads_per_test/sample_volume_ul in the manifest (give both on its line)"
            )
        else:
            notes.append(f"no events in the bead gate {beads}")
    if lymphocytes and row.lymphocytes_per_ul is not None:
        n = counts.get(lymphocytes, 0)
        if n > 0:
            return CountBasis(
                "lymphocytes", lymphocytes, n, row.lymphocytes_per_ul, "; ".join(notes)
            )
        notes.append(f"no events in the lymphocyte gate {lymphocytes}")
    if leukocytes and row.wbc_per_ul is not None:
        n = counts.get(leukocytes, 0)
        if n > 0:
            return CountBasis("wbc", leukocytes, n, row.wbc_per_ul, "; ".join(notes))
        notes.append(f"no events in the leukocyte gate {leukocytes}")
    return CountBasis(note="; ".join(notes))

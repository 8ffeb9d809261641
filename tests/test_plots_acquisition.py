"""The acquisition QC figure: drawn from the stored tables, deterministic, honest when empty."""

from __future__ import annotations

import numpy as np
import pytest

from cytokit import simulate
from cytokit.plots import acquisition_figure
from cytokit.plots._figure import figure_bytes
from cytokit.qc import AcquisitionQCSettings, acquisition_qc
from cytokit.simulate import anomalies as A


@pytest.fixture(scope="module")
def qc():
    design = simulate.preset_design("sample", seed=3)
    plan = A.AnomalyPlan(
        clogs=(A.Clog(start=3.0, drop=1.0, drop_rate=0.2, burst=0.3),),
        drifts=(A.Drift(start=7.0, change=-0.4, detectors=A.LASERS["blue"]),),
    )
    sample, _ = simulate.simulate_sample(design, "P01", 7, 30_000, anomalies=plan)
    return acquisition_qc(sample)


def test_figure_has_rate_and_channel_panels_with_shaded_ranges(qc):
    bins, ranges = qc.bins_frame(), qc.ranges_frame()
    assert set(ranges["reasons"]) >= {"rate+signal", "signal"}
    fig = acquisition_figure(bins, ranges, title="P01 day 7", max_channels=4)
    axes = fig.get_axes()
    assert len(axes) == 5
    assert axes[0].get_ylabel() == "events/s"
    # every removed range is shaded in every panel
    assert all(len(ax.patches) >= len(ranges) for ax in axes)
    png = figure_bytes(fig)
    assert png == figure_bytes(acquisition_figure(bins, ranges, title="P01 day 7", max_channels=4))
    # one legend says what each line is and what each shade removed, clear of the title
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels[:5] == [
        "per bin: rate, channel mean",
        "upper-half mean",
        "mean ± SD",
        "expected rate",
        "stable level",
    ]
    assert {"removed: rate+signal", "removed: signal"} <= set(labels[5:])
    fig.canvas.draw()
    box = axes[0].get_legend().get_window_extent()
    assert box.y1 < fig._suptitle.get_window_extent().y0


def test_channels_that_departed_most_are_kept(qc):
    bins = qc.bins_frame()
    fig = acquisition_figure(bins, qc.ranges_frame(), max_channels=2)
    names = [ax.get_ylabel() for ax in fig.get_axes()[1:]]
    z = {n: np.nanmax(np.abs(bins[f"{n} z"])) for n in qc.bins.channels}
    assert set(names) == set(sorted(z, key=z.get)[-2:])


def test_a_file_without_time_bins_gets_a_sentence(qc):
    fig = acquisition_figure(qc.bins_frame().iloc[0:0], None, title="x")
    assert "did not run" in fig.get_axes()[0].texts[0].get_text()
    with pytest.raises(KeyError, match="no signal columns for channel"):
        acquisition_figure(qc.bins_frame(), None, channels=["nope"])


def test_settings_without_signal_still_plot(qc):
    design = simulate.preset_design("sample", seed=4)
    sample, _ = simulate.simulate_sample(design, "P01", 7, 10_000)
    q = acquisition_qc(sample, AcquisitionQCSettings(checks=("rate",)))
    acquisition_figure(q.bins_frame(), q.ranges_frame())


def test_channel_axes_hold_the_series_and_readable_ticks(qc):
    """Each channel panel spans its drawn series on the asinh scale (matplotlib's own
    margins, taken on the values, reached to -1,000 and squeezed positive scatter into the
    top of the panel), and shows at least two ticks, none crowding the next."""
    bins = qc.bins_frame()
    fig = acquisition_figure(bins, qc.ranges_frame())
    fig.canvas.draw()
    for ax in fig.get_axes()[1:]:
        name = ax.get_ylabel()
        c = float(bins[f"{name} cofactor"].iloc[0])
        shown = np.concatenate(
            [bins[f"{name} {k}"].to_numpy(float) for k in ("low", "high", "mean", "upper")]
        )
        lo, hi = np.arcsinh(np.nanmin(shown) / c), np.arcsinh(np.nanmax(shown) / c)
        bottom, top = np.arcsinh(np.asarray(ax.get_ylim()) / c)
        span = hi - lo
        assert lo - 0.06 * span <= bottom <= lo and hi <= top <= hi + 0.06 * span, name
        ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
        assert len(ticks) >= 2, (name, ticks)
        gaps = np.diff(np.arcsinh(np.asarray(ticks) / c))
        assert (gaps >= 0.15 * (top - bottom) - 1e-9).all(), (name, ticks)
        # plain digits, never 1.2e+05; 0 where the axis holds it
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert labels and not any("e+" in x or "e-" in x for x in labels), (name, labels)
        low, high = ax.get_ylim()
        if low < 0 < high:
            assert 0 in ticks, (name, ticks)


def test_channel_names_stay_clear_of_the_tick_labels_and_inside_the_figure():
    """On a small file a scatter channel's range is narrow and its ticks read 7.4e+04:
    the channel's name sits left of them, not over them, and a long name wraps rather
    than running off the figure's left edge."""
    design = simulate.preset_design("sample", seed=5)
    sample, _ = simulate.simulate_sample(design, "P01", 7, 10_000)
    bins = acquisition_qc(sample).bins_frame()
    long = "FSC-A"
    bins = bins.rename(columns={c: c.replace(long, "Comp-BV421-A CD56 bright") for c in bins})
    fig = acquisition_figure(bins, None, title="small file")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    edge = fig.get_window_extent()
    checked = 0
    for ax in fig.get_axes()[1:]:
        label = ax.yaxis.label.get_window_extent(renderer)
        assert label.x0 >= edge.x0 - 0.5, ax.get_ylabel()
        for tick in ax.get_yticklabels():
            if tick.get_visible() and tick.get_text():
                assert label.x1 <= tick.get_window_extent(renderer).x0 + 0.5, (
                    ax.get_ylabel(),
                    tick.get_text(),
                )
                checked += 1
    assert checked >= 6
    assert "Comp-BV421-A\nCD56 bright" in [ax.get_ylabel() for ax in fig.get_axes()]


@pytest.mark.parametrize(
    ("value", "text"),
    [(120_000, "120,000"), (74_486.9, "74,500"), (-100, "-100"), (100, "100"), (10, "10"),
     (0, "0"), (3.2, "3.2"), (0.5, "0.5"), (1e-5, "0.00001"), (-0.05, "-0.05")],
)  # fmt: skip
def test_tick_labels_are_plain_digits(value, text):
    """Ticks read 1.2e+05 and 1e-05 (matplotlib's %g); a first plain-digit version cut
    -100 to -1 (its trailing zeros stripped)."""
    from cytokit.plots.acquisition import _tick_text

    assert _tick_text(value) == text

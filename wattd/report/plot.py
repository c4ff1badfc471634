"""``--plot FILE.png``: power over time per run and meter, overlaid (time since
the run's start). matplotlib is the optional extra ``plot``."""

from __future__ import annotations

from pathlib import Path

from wattd.report.model import Report

INSTALL_HINT = "pip install 'wattd[plot]'"


class PlotUnavailableError(Exception):
    """matplotlib is not installed."""


def check_available(option: str = "--plot") -> None:
    try:
        import matplotlib  # noqa: F401 - optional extra, probed on demand
    except ImportError:
        raise PlotUnavailableError(
            f"{option} needs matplotlib, the optional extra 'plot': {INSTALL_HINT}") from None


def plot_report(report: Report, path: str | Path) -> int:
    """Draw and save; returns the number of curves drawn."""
    check_available()
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5))
    curves = 0
    for row in report.rows:
        record = row.record
        if not record.plot:
            continue
        xs = [(t - record.start_ns) / 1e9 for t, _ in record.plot]
        ys = [p for _, p in record.plot]
        label = row.label if len({r.record.meter for r in report.rows}) == 1 else (
            f"{row.label} ({record.meter})")
        ax.plot(xs, ys, linewidth=1.0, label=label)
        curves += 1
    ax.set_xlabel("time since run start (s)")
    ax.set_ylabel("power (W)")
    ax.set_title(f"wattd: power per run ({report.journal})")
    ax.grid(visible=True, alpha=0.3)
    if 0 < curves <= 20:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)
    return curves

"""PNG plots of simulated results: completion-time CDF, and energy and SLO attainment against rate.

matplotlib is the optional extra `plot` (`pip install 'murakkab-lg[plot]'`), imported here only.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from murakkab_lg.errors import ConfigError
from murakkab_lg.sim.metrics import PolicyResult

__all__ = ("write_plots",)


def _pyplot():  # type: ignore[no-untyped-def]
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plots need matplotlib. To fix: pip install 'murakkab-lg[plot]', or drop --plot.") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(results: list[PolicyResult], out_dir: str | Path, title: str) -> list[Path]:
    """Write cdf.png (at the highest rate), energy_vs_rate.png and slo_vs_rate.png; return their paths."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_policy: dict[str, list[PolicyResult]] = defaultdict(list)
    for r in results:
        by_policy[r.policy].append(r)
    top = max(r.rate_per_s for r in results)
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    for pol, rs in by_policy.items():
        r = next(x for x in rs if x.rate_per_s == top)
        xs = r.completion_s
        if xs:
            ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label=pol)
    slo = results[0].latency_slo_s
    if slo:
        ax.axvline(slo, color="grey", linestyle="--", linewidth=1, label=f"SLO {slo:g} s")
    ax.set(xlabel="workflow completion time (s)", ylabel="share of runs",
           title=f"{title}: completion time at {top:g} runs/s (simulated)")
    ax.legend()
    paths.append(_save(fig, out / "cdf.png", plt))

    for key, ylabel, name in (("energy_per_workflow_j", "energy per workflow (J, simulated)", "energy_vs_rate.png"),
                              ("slo_attainment", "SLO attainment (simulated)", "slo_vs_rate.png")):
        fig, ax = plt.subplots(figsize=(6, 4))
        for pol, rs in by_policy.items():
            rs = sorted(rs, key=lambda x: x.rate_per_s)
            ys = [getattr(x, key) for x in rs]
            if any(y is None for y in ys):
                continue
            ax.plot([x.rate_per_s for x in rs], ys, marker="o", label=pol)
        ax.set(xlabel="arrival rate (workflow runs/s)", ylabel=ylabel, title=title)
        ax.legend()
        paths.append(_save(fig, out / name, plt))
    return paths


def _save(fig, path: Path, plt) -> Path:  # type: ignore[no-untyped-def]
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""PNG figures (matplotlib, Agg backend): reliability diagrams and the simulation summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from seqrec.value.reliability import ReliabilityCurve  # noqa: E402

if TYPE_CHECKING:
    from seqrec.value.simulator import SimulationResult


def reliability_diagram(
    curves: dict[str, ReliabilityCurve], path: str | Path, title: str = "Reliability"
) -> Path:
    """Save observed answer rate vs mean predicted probability per bin, one line per curve.

    Args:
        curves: label -> :class:`ReliabilityCurve` (e.g. ``{"raw": ..., "isotonic": ...}``).
        path: PNG file to write (parent folders are created).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=80)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for label, curve in curves.items():
        filled = curve.counts > 0
        ax.plot(curve.mean_predicted[filled], curve.observed_rate[filled], marker="o", label=label)
    ax.set(
        xlabel="mean predicted P(answer)",
        ylabel="observed answer rate",
        xlim=(0, 1),
        ylim=(0, 1),
        title=title,
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def simulation_figure(result: SimulationResult, path: str | Path) -> Path:
    """Save ARPU per policy (95% CI) and the A/B designs' effect estimates (mean ± SD, truth line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.3 * len(result.rows) + 1.6), dpi=80)
    labels = [f"{r.policy} ({r.estimates})" for r in result.rows]
    arpu = np.array([r.arpu.mean for r in result.rows])
    errors = np.array(
        [
            [r.arpu.mean - r.arpu.ci_low for r in result.rows],
            [r.arpu.ci_high - r.arpu.mean for r in result.rows],
        ]
    )
    colours = ["tab:blue" if r.estimates == "model" else "tab:orange" for r in result.rows]
    axes[0].barh(labels, arpu, xerr=errors, capsize=3, color=colours)
    axes[0].invert_yaxis()  # first policy on top
    axes[0].set(xlabel="ARPU ($ per user, 95% CI)", title="Policies (blue: model, orange: oracle)")
    axes[0].tick_params(axis="y", labelsize=8)
    if result.designs and result.truth_effect is not None:
        names = [d.design for d in result.designs]
        axes[1].errorbar(
            names,
            [d.mean_effect for d in result.designs],
            yerr=[d.sd_effect for d in result.designs],
            fmt="o",
            capsize=4,
            label="mean ± SD over experiments",
        )
        axes[1].axhline(
            result.truth_effect.mean, color="black", linestyle="--", label="true effect"
        )
        for i, d in enumerate(result.designs):
            axes[1].annotate(
                f"coverage {d.coverage:.0%}",
                (i, d.mean_effect),
                textcoords="offset points",
                xytext=(8, -14),
                fontsize=8,
            )
        cfg = result.config
        axes[1].set(
            ylabel=f"ARPU effect, {cfg.treatment} - {cfg.control} ($)",
            title="A/B: user vs session split",
            xlim=(-0.5, len(names) - 0.5),
        )
        axes[1].legend(fontsize=8)
    else:
        axes[1].axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

"""The picture of a simulation: test mIoU against annotated images and against clicks, per-class IoU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dgan_al.report.figures import pyplot, save_figure


def plot_simulation(analysis: dict, path: Path, settings) -> None:
    """analysis: ``analyse_runs``'s result; three panels (mIoU vs images, mIoU vs clicks, classes)."""
    plt = pyplot()
    test = analysis["test"]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.8), dpi=100,
                                              gridspec_kw={"width_ratios": [1, 1, 1.3]})
    pct = f"{test['level']:.0%}"
    for k, (name, c) in enumerate(test["curves"].items()):
        colour = f"C{k}"
        m, (lo, hi) = np.array(c["miou"]), np.array(c["miou_interval"]).T
        left.plot(c["images"], m, marker="o", color=colour, label=name)
        left.fill_between(c["images"], lo, hi, color=colour, alpha=0.12)
        if "clicks_edit" in c:  # the primary count: editing the exported files' polygons
            middle.plot(c["clicks_edit"], m, marker="o", color=colour, label=f"{name} (editing the files)")
            middle.plot(c["clicks_prefill"], m, marker="x", ls="--", color=colour, lw=0.8,
                        label=f"{name} (re-tracing them)")
        else:
            middle.plot(c["clicks_prefill"], m, marker="o", color=colour, label=f"{name} (files as exported)")
        middle.plot(c["clicks_scratch"], m, marker=".", ls=":", color=colour, label=f"{name} (from scratch)")
    left.set_xlabel("annotated images")
    left.set_ylabel(f"test mIoU ({settings.truth} truth)")
    left.set_title(f"{test['repeats']} repeats, {settings.per_round} per round, pool {settings.pool_size}; {pct} bands")
    middle.set_xlabel("clicks (cumulative)")
    middle.set_title("the same against the annotator's clicks")
    for ax in (left, middle):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    per_class = test.get("class_iou_last")  # with paired intervals; older analyses have only the means
    final = {name: {c: e[name]["iou"] for c, e in per_class.items()} for name in test["curves"]} if per_class \
        else analysis["final_class_iou_test"]
    classes = list(next(iter(final.values())))
    width = 0.8 / max(1, len(final))
    for k, (name, values) in enumerate(final.items()):
        x = np.arange(len(classes)) + k * width - 0.4 + width / 2
        heights = [values[c] or 0.0 for c in classes]
        right.bar(x, heights, width, label=name)
        for xi, h, c in zip(x, heights, classes):
            interval = per_class[c][name].get("diff_interval") if per_class else None
            if interval and (interval[0] > 0 or interval[1] < 0):  # paired difference to random excludes 0
                right.text(xi, h + 0.01, "*", ha="center", fontsize=10)
    right.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    right.set_ylim(0, 1)
    right.set_ylabel("IoU")
    right.set_title("per class after the last round (test)" + ("; *: paired difference to random,\n"
                    f"{pct} interval excludes 0" if per_class else ""), fontsize=10)
    right.grid(axis="y", alpha=0.3)
    right.legend(fontsize=7)
    save_figure(fig, path)

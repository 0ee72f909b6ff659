"""What a simulation shows: paired differences with bootstrap intervals, and the savings of each strategy.

The runs of one repeat are pairs: every strategy starts from the repeat's round-0 model and is measured
on the same held-out images. A bootstrap draw resamples both sources of chance together: the repeats
(with replacement) and the held-out images (with replacement, the same images for every run of the
draw); a run's mIoU in a draw comes from the summed confusion matrices of the drawn images. Intervals
are the draws' percentiles (``level``, default 90%).

- ``curves``: per strategy and round, the mean and interval of mIoU, and of its paired difference to
  the reference strategy (``random``);
- ``test_sampling_se``: the standard error of one run's mIoU from its held-out images alone (images
  resampled, the run fixed), averaged over runs: how large the held-out set must be;
- ``class_iou_last``: per class, each strategy's last-round IoU and its paired difference to the reference
  with its interval (the rare parts a strategy aims at);
- ``prefill_vs_scratch``: per strategy and round, the clicks per image correcting the exported file against
  drawing it from scratch (under each correction model: ``prefill`` re-traces what is wrong, ``edit``
  edits the polygons, ``labelme/clicks.py``), with the paired difference and an interval over the repeats;
- ``effort_vs_naive``: per strategy and click count, the clicks needed to reach the reference's last-round
  mIoU as a share of what the naive way needs (the reference's images, each drawn from scratch), with an
  interval over the draws that reach it;
- ``savings``: the images and clicks each strategy needs to reach the reference's last-round mIoU
  (linear interpolation on its mean curve; None: not reached), and the difference to the reference's,
  with the share of draws in which it is reached and an interval over those draws.
"""

from __future__ import annotations

import warnings

import numpy as np

REFERENCE = "random"
CLICK_KINDS = ("scratch", "prefill", "edit")  # from scratch; correcting by re-tracing; by editing polygons


def class_iou(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU of confusion matrices [..., K, K] (truth rows): [..., K], NaN for a class absent from
    both truth and prediction."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    union = conf.sum(-1) + conf.sum(-2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def miou(conf: np.ndarray) -> np.ndarray:
    """mIoU of confusion matrices [..., K, K]: the mean over classes present in truth or prediction, as
    ``metrics.mean_iou``: [...]."""
    with np.errstate(invalid="ignore"):
        return np.nanmean(class_iou(conf), axis=-1)


def reach(x: np.ndarray, y: np.ndarray, target: float) -> float | None:
    """The first x at which the curve y(x) (points in order) reaches target, interpolated linearly."""
    for i in range(len(y)):
        if y[i] >= target:
            if i == 0:
                return float(x[0])
            frac = (target - y[i - 1]) / (y[i] - y[i - 1])
            return float(x[i - 1] + frac * (x[i] - x[i - 1]))
    return None


def resample(conf: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap draws of ``analyse``: per draw the held-out images resampled (the same ones for every
    run) and the repeats resampled. conf: int [R, S, T, N, K, K]. Returns each run's per-class IoU on the
    draw's images, [B, R, S, T, K] (NaN: class absent), and the draw's repeats, int [B, R] (take them
    along axis 1, then average)."""
    r_n, s_n, t_n, n_img = conf.shape[:4]
    rng = np.random.default_rng(seed)
    flat = conf.reshape(r_n * s_n * t_n, n_img, -1).transpose(1, 0, 2).reshape(n_img, -1).astype(np.float32)
    ious = np.empty((n_boot, r_n, s_n, t_n, conf.shape[-1]))
    reps = np.empty((n_boot, r_n), dtype=np.int64)
    for start in range(0, n_boot, 100):
        stop = min(start + 100, n_boot)
        weights = rng.multinomial(n_img, np.full(n_img, 1.0 / n_img), size=stop - start).astype(np.float32)
        summed = (weights @ flat).reshape(stop - start, r_n, s_n, t_n, *conf.shape[4:])
        ious[start:stop] = class_iou(summed)
        reps[start:stop] = rng.integers(0, r_n, size=(stop - start, r_n))
    return ious, reps


def curve_arrays(runs: list[list[dict]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``analyse``'s images [R, S, T] and cumulative clicks (kind -> [R, S, T]) from run dicts (``runs/*.json``),
    ``runs[r][s]`` the run of repeat r and strategy s. A click count that some run did not record (``edit``,
    in folders made before it existed) is left out."""
    images = np.array([[[p["n_annotations"] for p in run["curve"]] for run in row] for row in runs])
    recorded = [kind for kind in CLICK_KINDS
                if all(kind in p["clicks"] for row in runs for run in row for p in run["curve"])]
    clicks = {kind: np.array([[np.cumsum([p["clicks"][kind] for p in run["curve"]]) for run in row] for row in runs])
              for kind in recorded}
    return images, clicks


def draw_miou(ious: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Each run's mIoU in each draw, [B, R, S, T], from ``resample``'s per-class IoU [B, R, S, T, K].

    A class the run has on the whole held-out set (in truth or prediction) but that no image of a draw
    holds keeps its whole-set IoU in that draw. Dropping it instead would lift the draws above the point
    estimate whenever a rare, poorly segmented class (one earring image in 200) is not drawn."""
    whole = class_iou(conf.sum(3))  # [R, S, T, K]
    filled = np.where(np.isnan(ious) & ~np.isnan(whole)[None], whole[None], ious)
    with np.errstate(invalid="ignore"):
        return np.nanmean(filled, axis=-1)


def analyse(conf: np.ndarray, images: np.ndarray, clicks: dict[str, np.ndarray], strategies: list[str],
            n_boot: int = 1000, level: float = 0.90, seed: int = 0, classes: list[str] | None = None) -> dict:
    """conf: int [R, S, T, N, K, K] per repeat, strategy, round (0 = the shared start) and held-out image;
    images: [R, S, T] annotated images so far; clicks: name -> [R, S, T] clicks so far (cumulative).
    classes: the K class names (adds ``class_iou_last``). Returns the blocks of the module doc."""
    r_n, s_n, t_n, n_img = conf.shape[:4]
    point = miou(conf.sum(3))  # [R, S, T]
    lo_q, hi_q = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    ious, reps = resample(conf, n_boot, seed)
    image_only = draw_miou(ious, conf)  # [B, R, S, T] each run's mIoU on the draw's images
    draws = np.take_along_axis(image_only, reps[:, :, None, None], axis=1).mean(1)  # [B, S, T]
    ref = strategies.index(REFERENCE) if REFERENCE in strategies else None
    curves = {}
    for s, name in enumerate(strategies):
        entry = {"images": images[:, s].mean(0).tolist(), "miou": point[:, s].mean(0).tolist(),
                 "miou_interval": np.percentile(draws[:, s], [lo_q, hi_q], axis=0).T.tolist(),
                 **{f"clicks_{k}": v[:, s].mean(0).tolist() for k, v in clicks.items()}}
        if ref is not None and s != ref:
            diff = draws[:, s] - draws[:, ref]
            entry["diff_to_" + REFERENCE] = (point[:, s] - point[:, ref]).mean(0).tolist()
            entry["diff_interval"] = np.percentile(diff, [lo_q, hi_q], axis=0).T.tolist()
        curves[name] = entry
    result = {"level": level, "bootstrap_draws": n_boot, "repeats": r_n, "held_out_images": n_img,
              "curves": curves,
              "test_sampling_se": {"last_round_mean": float(image_only[:, :, :, -1].std(0).mean()),
                                   "max": float(image_only.std(0).max())}}
    if {"prefill", "scratch"} <= set(clicks):
        result["prefill_vs_scratch"] = _prefill_effect(images, clicks, strategies, reps, lo_q, hi_q)
    if classes is not None:
        result["class_iou_last"] = _class_iou_last(conf, ious, reps, strategies, ref, classes, lo_q, hi_q)
    if ref is not None:
        result["savings"] = _savings(point, images, clicks, strategies, ref, draws, reps, image_only, lo_q, hi_q)
        if "scratch" in clicks:
            result["effort_vs_naive"] = _effort_vs_naive(point, clicks, strategies, ref, draws, reps, lo_q, hi_q)
    return result


def _effort_vs_naive(point, clicks, strategies, ref, draws, reps, lo_q, hi_q) -> dict:
    """Per strategy and click count: the clicks to reach the reference's last-round mIoU, divided by the
    naive way's (the reference's from-scratch clicks to reach it), on the mean curves and per draw. A draw
    in which the strategy does not reach the target counts as an infinite ratio, so the interval is not
    drawn from the favourable draws alone (an infinite upper end: missed in over 5% of the draws)."""
    target = float(point[:, ref].mean(0)[-1])  # the mean curve's own last point: the reference reaches it
    naive_x = clicks["scratch"][:, ref]
    naive = reach(naive_x.mean(0), point[:, ref].mean(0), target)
    out = {"target_miou": target, "reference": REFERENCE, "naive_clicks": naive, "strategies": {}}
    for s, name in enumerate(strategies):
        entry = {}
        for kind, x in clicks.items():
            mine = reach(x[:, s].mean(0), point[:, s].mean(0), target)
            ratios = []
            for b in range(len(draws)):
                tb = draws[b][ref, -1]
                a = reach(x[reps[b]].mean(0)[s], draws[b][s], tb)
                c = reach(naive_x[reps[b]].mean(0), draws[b][ref], tb)  # the reference's own last point: reached
                ratios.append(np.inf if a is None else a / c)
            ratios = np.array(ratios)
            interval = np.quantile(ratios, [lo_q / 100, hi_q / 100], method="inverted_cdf")
            entry[kind] = {"needed": mine, "ratio": None if mine is None or not naive else mine / naive,
                           "reached_share": float(np.isfinite(ratios).mean()),
                           "ratio_interval": [float(v) if np.isfinite(v) else None for v in interval]}
        out["strategies"][name] = entry
    return out


def _class_iou_last(conf, ious, reps, strategies, ref, classes, lo_q, hi_q) -> dict:
    """Per class, per strategy: the last round's IoU (mean over the repeats where the class is present in
    truth or prediction) and, where a reference runs, the paired difference to it with its interval."""
    point = class_iou(conf[:, :, -1].sum(2))  # [R, S, K]
    last = np.take_along_axis(ious[:, :, :, -1], reps[:, :, None, None], axis=1)  # [B, R, S, K]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class absent from every drawn run: NaN
        draws = np.nanmean(last, axis=1)  # [B, S, K]
        means = np.nanmean(point, axis=0)  # [S, K]
    out = {}
    for k, cls in enumerate(classes):
        if np.isnan(point[:, :, k]).all():
            continue  # in no truth and no prediction: nothing to say
        entry = {}
        for s, name in enumerate(strategies):
            e = {"iou": None if np.isnan(means[s, k]) else float(means[s, k])}
            if ref is not None and s != ref:
                diff = draws[:, s, k] - draws[:, ref, k]
                diff = diff[~np.isnan(diff)]
                e["diff_to_" + REFERENCE] = None if e["iou"] is None or np.isnan(means[ref, k]) else \
                    float(means[s, k] - means[ref, k])
                e["diff_interval"] = np.percentile(diff, [lo_q, hi_q]).tolist() if len(diff) else None
            entry[name] = e
        out[cls] = entry
    return out


def _savings(point, images, clicks, strategies, ref, draws, reps, image_only, lo_q, hi_q) -> dict:
    measures = {"images": images, **{f"clicks_{k}": v for k, v in clicks.items()}}
    target = float(point[:, ref].mean(0)[-1])  # the mean curve's own last point: the reference reaches it
    out = {"target_miou": target, "reference": REFERENCE}
    for s, name in enumerate(strategies):
        entry = {}
        for measure, x in measures.items():
            mine = reach(x[:, s].mean(0), point[:, s].mean(0), target)
            theirs = reach(x[:, ref].mean(0), point[:, ref].mean(0), target)
            saved = []
            for b in range(len(draws)):
                xb = x[reps[b]].mean(0)  # [S, T]
                yb = draws[b]
                tb = yb[ref, -1]
                a, c = reach(xb[s], yb[s], tb), reach(xb[ref], yb[ref], tb)
                if a is not None and c is not None:
                    saved.append(c - a)
            entry[measure] = {"needed": mine, "saved": None if mine is None or theirs is None else theirs - mine,
                              "reached_share": len(saved) / len(draws),
                              "saved_interval": np.percentile(saved, [lo_q, hi_q]).tolist() if saved else None}
        out[name] = entry
    return out


def _prefill_effect(images, clicks, strategies, reps, lo_q, hi_q) -> dict:
    """Per strategy and round (from 1), the clicks per image annotated that round with the pre-fill and from
    scratch, and their difference with an interval over resampled repeats (the same images, so paired)."""
    new = np.diff(images, axis=-1)  # [R, S, T-1] images annotated in each round
    per_image = {k: np.diff(v, axis=-1) / np.maximum(new, 1) for k, v in clicks.items()}
    out = {name: [] for name in strategies}
    for t in range(new.shape[-1]):
        for s, name in enumerate(strategies):
            entry = {"round": t + 1, **{k: float(v[:, s, t].mean()) for k, v in per_image.items()}}
            for kind in (k for k in ("prefill", "edit") if k in per_image):
                diff = per_image[kind][:, s, t] - per_image["scratch"][:, s, t]  # [R]
                lo, hi = np.percentile(diff[reps].mean(1), [lo_q, hi_q])
                key = "diff" if kind == "prefill" else f"{kind}_diff"
                entry[key], entry[key + "_interval"] = float(diff.mean()), [float(lo), float(hi)]
            out[name].append(entry)
    return out


def table_text(analysis: dict, split: str = "test") -> str:
    """mIoU by round against images and clicks, paired differences and savings, as plain text."""
    curves = analysis["curves"]
    pct = f"{analysis['level']:.0%}"
    lines = [f"{split} mIoU: mean over {analysis['repeats']} repeats [{pct} interval over repeats and "
             f"{analysis['held_out_images']} held-out images]; clicks so far (and per image annotated that round)"]
    for name, c in curves.items():
        lines.append(f"{name}")
        for t, (n, m, (lo, hi)) in enumerate(zip(c["images"], c["miou"], c["miou_interval"])):
            new = n - (c["images"][t - 1] if t else 0)  # images annotated this round
            clicks = "  ".join(f"{k[7:]} {c[k][t]:7.0f} ({(c[k][t] - (c[k][t - 1] if t else 0)) / max(new, 1):4.0f}/img)"
                               for k in c if k.startswith("clicks_"))
            diff = ""
            if "diff_interval" in c:
                d, (dlo, dhi) = c["diff_to_" + REFERENCE][t], c["diff_interval"][t]
                diff = f"  vs {REFERENCE} {d:+.3f} [{dlo:+.3f}, {dhi:+.3f}]"
            lines.append(f"  round {t}: {n:5.1f} images  clicks: {clicks}  mIoU {m:.3f} [{lo:.3f}, {hi:.3f}]{diff}")
    se = analysis["test_sampling_se"]
    lines.append(f"held-out sampling error of one run's mIoU (bootstrap over its images): "
                 f"{se['last_round_mean']:.4f} at the last round (mean over runs), at most {se['max']:.4f}")
    if "prefill_vs_scratch" in analysis:
        lines.append(f"clicks per image annotated in the round, correcting the exported file (pre-filled where it was) "
                     f"against drawing from scratch, difference [{pct} interval over repeats]")
        for name, rounds in analysis["prefill_vs_scratch"].items():
            for kind, key in (("prefill", "diff"), ("edit", "edit_diff")):
                if key in rounds[0]:
                    lines.append(f"  {name:<14}{kind:<8}" + "; ".join(
                        f"round {e['round']}: {e[kind]:.0f} vs {e['scratch']:.0f}, {e[key]:+.0f} "
                        f"[{e[key + '_interval'][0]:+.0f}, {e[key + '_interval'][1]:+.0f}]" for e in rounds))
    if "class_iou_last" in analysis:
        lines.append(f"last-round IoU per class (mean over repeats; difference to {REFERENCE} [{pct} interval])")
        for cls, entry in analysis["class_iou_last"].items():
            parts = []
            for name, e in entry.items():
                text = f"{name} " + ("-" if e["iou"] is None else f"{e['iou']:.2f}")
                if e.get("diff_to_" + REFERENCE) is not None and e.get("diff_interval"):
                    lo, hi = e["diff_interval"]
                    text += f" ({e['diff_to_' + REFERENCE]:+.2f} [{lo:+.2f}, {hi:+.2f}])"
                parts.append(text)
            lines.append(f"  {cls:<12}" + ", ".join(parts))
    if "savings" in analysis:
        sv = analysis["savings"]
        lines.append(f"savings: images and clicks to reach {sv['reference']}'s last-round mIoU {sv['target_miou']:.3f}"
                     f" (saved = {sv['reference']}'s need minus this one's; {pct} interval over the draws that reach it)")
        for name in curves:
            parts = []
            for measure, e in sv[name].items():
                if e["needed"] is None:
                    parts.append(f"{measure}: not reached")
                    continue
                interval = "" if e["saved_interval"] is None else \
                    f" [{e['saved_interval'][0]:+.0f}, {e['saved_interval'][1]:+.0f}]"
                parts.append(f"{measure}: {e['needed']:.0f} (saved {e['saved']:+.0f}{interval}, "
                             f"reached in {e['reached_share']:.0%})")
            lines.append(f"  {name:<14}" + "; ".join(parts))
    if "effort_vs_naive" in analysis:
        ev = analysis["effort_vs_naive"]
        naive = "not reached" if ev["naive_clicks"] is None else f"{ev['naive_clicks']:.0f} clicks"
        lines.append(f"effort to reach {ev['reference']}'s last-round mIoU {ev['target_miou']:.3f}, as a share of the "
                     f"naive way's ({ev['reference']} images drawn from scratch: {naive}) [{pct} interval over draws]")
        for name, entry in ev["strategies"].items():
            parts = []
            for kind, e in entry.items():
                if e["ratio"] is None:
                    parts.append(f"{kind}: not reached")
                    continue
                lo, hi = (("inf" if v is None else f"{v:.2f}") for v in e["ratio_interval"])
                reached = "" if e["reached_share"] == 1 else f", reached in {e['reached_share']:.0%} of draws"
                parts.append(f"{kind} {e['ratio']:.2f} [{lo}, {hi}]{reached}")
            lines.append(f"  {name:<14}" + "; ".join(parts))
    return "\n".join(lines) + "\n"

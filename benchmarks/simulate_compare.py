"""Paired difference between two strategy runs of two `dgan-al simulate` folders, e.g. one setting against another.

Two folders made with the same seed, repeats, rounds and held-out sets but another value of one setting
(``--rare-power 0.5`` against ``1``) hold runs that are pairs: repeat r of both starts from the same
round-0 model and is scored on the same held-out images. This script prints A's and B's mIoU per round and
B - A, and the images and clicks each needs to reach a target run's last-round mIoU (``--target``;
random's is the loop's rule) with the paired saving, all with the intervals of ``simulate``'s analysis
(the same bootstrap over repeats and held-out images), on validation by default: choose a setting on
validation, then read test.

    python benchmarks/simulate_compare.py runs/simulate:rare runs/simulate-rare05:rare \
        --target runs/simulate:random [--split val] [--recount recount.json --setting tol1 --gate 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from dgan_al.workflows.simulate_analysis import curve_arrays, draw_miou, miou, reach, resample
from dgan_al.workflows.simulate_settings import upgrade_settings
from prefill_design import recounted  # benchmarks/ is on the path when this script runs

# settings that may differ between the two folders (they do not change which runs are pairs)
FREE = {"strategies", "repeats", "rare_power", "centers", "skip_top", "band", "embedding", "prefill",
        "prefill_min_annotations", "score_pixels", "switch_at"}


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)


def load(spec: str, split: str) -> tuple[dict, dict[int, np.ndarray], dict[int, dict]]:
    folder, _, strategy = spec.rpartition(":")
    folder = Path(folder)
    if not (folder / "settings.json").is_file():
        fail(f"{folder}: not a `dgan-al simulate --out` folder (no settings.json)")
    settings = upgrade_settings(json.loads((folder / "settings.json").read_text()))
    conf, runs = {}, {}
    for path in sorted((folder / "runs").glob(f"r*-{strategy}.json")):
        repeat = int(path.name[1:].split("-", 1)[0])
        runs[repeat] = json.loads(path.read_text())
        conf[repeat] = np.load(path.with_suffix(".npz"))[split]  # [T, N, K, K]
    if not conf:
        fail(f"{folder}: no finished runs of {strategy!r} in runs/")
    return settings, conf, runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="FOLDER:STRATEGY, the reference")
    parser.add_argument("b", help="FOLDER:STRATEGY, compared with it")
    parser.add_argument("--target", help="FOLDER:STRATEGY whose last-round mIoU A and B must reach "
                                         "(default: A's; the loop's rule uses random's)")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--level", type=float, default=0.90)
    parser.add_argument("--recount", type=Path, help="prefill_design.py --write-recount's file: edit clicks of "
                                                     "another pre-fill (--setting) at a gate (--gate)")
    parser.add_argument("--setting", default="shipped", help="with --recount: the pre-fill setting")
    parser.add_argument("--gate", type=int, default=1, help="with --recount: pre-fill from this many annotations on")
    args = parser.parse_args()
    specs = [args.target or args.a, args.a, args.b]
    loaded = [load(spec, args.split) for spec in specs]
    if args.recount:
        recount = json.loads(args.recount.read_text())
        if args.setting not in recount["settings"] or args.gate not in recount["gates"]:
            fail(f"{args.recount}: --setting must be one of {recount['settings']} and --gate one of {recount['gates']}")
        for spec, (_, _, runs) in zip(specs, loaded):
            folder = Path(spec.rpartition(":")[0])
            fixed = recounted(list(runs.values()), recount, folder, args.setting, args.gate)
            if fixed is None:
                fail(f"{folder}: {args.recount} lacks some of its rounds; run prefill_design.py on it again")
            runs.update({run["repeat"]: run for run in fixed})
    for spec, (settings, _, _) in zip(specs[1:], loaded[1:]):
        differ = {k for k in settings.keys() | loaded[0][0].keys() if settings.get(k) != loaded[0][0].get(k)} - FREE
        if differ:
            fail(f"{spec} and {specs[0]} are not pairs: settings {sorted(differ)} differ")
    repeats = sorted(set.intersection(*(set(conf) for _, conf, _ in loaded)))
    conf = np.stack([np.stack([c[r] for _, c, _ in loaded]) for r in repeats])  # [R, 3, T, N, K, K]
    images, clicks = curve_arrays([[runs[r] for _, _, runs in loaded] for r in repeats])
    ious, reps = resample(conf, args.draws, seed=loaded[0][0].get("seed", 0))
    image_only = draw_miou(ious, conf)  # [B, R, 3, T]
    lo_q, hi_q = (1 - args.level) / 2 * 100, (1 + args.level) / 2 * 100
    point = miou(conf.sum(3)).mean(0)  # [3, T]
    draws = np.take_along_axis(image_only, reps[:, :, None, None], axis=1).mean(1)  # [B, 3, T]
    print(f"{args.split} mIoU over {len(repeats)} paired repeats and {conf.shape[3]} held-out images "
          f"[{args.level:.0%} interval]; A = {args.a}, B = {args.b}")
    diff = draws[:, 2] - draws[:, 1]
    lo, hi = np.percentile(diff, [lo_q, hi_q], axis=0)
    for t, n in enumerate(images[:, 1].mean(0)):
        print(f"  {n:4.0f} images: A {point[1, t]:.3f}  B {point[2, t]:.3f}  "
              f"B - A {point[2, t] - point[1, t]:+.3f} [{lo[t]:+.3f}, {hi[t]:+.3f}]")
    target = point[0, -1]
    print(f"  to reach {specs[0]}'s last-round mIoU {target:.3f} (A's need minus B's, over the draws where both reach it):")
    for name, x in {"images": images, **{f"clicks_{k}": v for k, v in clicks.items()}}.items():
        need = [reach(x[:, s].mean(0), point[s], target) for s in (1, 2)]
        saved = []
        for b in range(args.draws):
            xb = x[reps[b]].mean(0)
            a, c = (reach(xb[s], draws[b, s], draws[b, 0, -1]) for s in (1, 2))
            if a is not None and c is not None:
                saved.append(a - c)
        text = " / ".join("not reached" if v is None else f"{v:.0f}" for v in need)
        interval = f" [{np.percentile(saved, lo_q):+.0f}, {np.percentile(saved, hi_q):+.0f}]" if saved else ""
        point_saved = "" if None in need else f", B saves {need[0] - need[1]:+.0f}{interval}"
        print(f"    {name}: A / B {text}{point_saved} (both reach it in {len(saved) / args.draws:.0%} of draws)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

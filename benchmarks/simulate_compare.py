"""Paired difference between two strategy runs of two `dgan-al simulate` folders, e.g. one setting against another.

Two folders made with the same seed, repeats, rounds and held-out sets but another value of one setting
(``--rare-power 0.5`` against ``1``) hold runs that are pairs: repeat r of both starts from the same
round-0 model and is scored on the same held-out images. This script puts run A (``FOLDER:STRATEGY``)
in the place of the reference and run B beside it, and prints B's mIoU and B - A per round with the
simulate analysis (90% interval over repeats and held-out images), on validation by default: choose a
setting on validation, then read test.

    python benchmarks/simulate_compare.py runs/simulate:rare runs/simulate-rare05:rare [--split val]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from dgan_al.workflows.simulate_analysis import REFERENCE, analyse

# settings that may differ between the two folders (they do not change which runs are pairs)
FREE = {"strategies", "rare_power", "al_centers", "centers", "skip_top", "band", "embedding", "prefill",
        "prefill_min_annotations", "score_pixels"}


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)


def load(spec: str, split: str) -> tuple[dict, dict[int, np.ndarray], dict[int, dict]]:
    folder, _, strategy = spec.rpartition(":")
    folder = Path(folder)
    if not (folder / "settings.json").is_file():
        fail(f"{folder}: not a `dgan-al simulate --out` folder (no settings.json)")
    settings = json.loads((folder / "settings.json").read_text())
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
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    (sa, ca, ra), (sb, cb, rb) = load(args.a, args.split), load(args.b, args.split)
    differ = {k for k in sa.keys() | sb.keys() if sa.get(k) != sb.get(k)} - FREE
    if differ:
        print(f"the runs are not pairs: settings {sorted(differ)} differ", file=sys.stderr)
        return 2
    repeats = sorted(ca.keys() & cb.keys())
    conf = np.stack([np.stack([ca[r], cb[r]]) for r in repeats])  # [R, 2, T, N, K, K]
    images = np.array([[[p["n_annotations"] for p in runs[r]["curve"]] for runs in (ra, rb)] for r in repeats])
    clicks = {k: np.array([[np.cumsum([p["clicks"][k] for p in runs[r]["curve"]]) for runs in (ra, rb)]
                           for r in repeats]) for k in ("prefill", "scratch")}
    out = analyse(conf, images, clicks, [REFERENCE, "b"], n_boot=args.draws, seed=sa.get("seed", 0))
    a, b = out["curves"][REFERENCE], out["curves"]["b"]
    print(f"{args.split} mIoU over {len(repeats)} paired repeats and {out['held_out_images']} held-out images "
          f"[{out['level']:.0%} interval]; A = {args.a}, B = {args.b}")
    for t, n in enumerate(a["images"]):
        d, (lo, hi) = b["diff_to_" + REFERENCE][t], b["diff_interval"][t]
        print(f"  {n:4.0f} images: A {a['miou'][t]:.3f}  B {b['miou'][t]:.3f}  B - A {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    for measure, e in out["savings"]["b"].items():
        if e["needed"] is None:
            print(f"  {measure}: B does not reach A's last-round mIoU {out['savings']['target_miou']:.3f}")
        else:
            interval = "" if e["saved_interval"] is None else \
                f" [{e['saved_interval'][0]:+.0f}, {e['saved_interval'][1]:+.0f}]"
            print(f"  {measure} to reach A's last-round mIoU {out['savings']['target_miou']:.3f}: B {e['needed']:.0f}, "
                  f"saves {e['saved']:+.0f}{interval} (reached in {e['reached_share']:.0%} of draws)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One analysis of the repeats of several `dgan-al simulate` folders that differ only in ``--seed``.

Every folder scores its runs on the same held-out sets (their seeds are fixed), so the repeats of a
folder made with ``--seed 6`` are further draws of the same experiment as those of the default
``--seed 0``: this script stacks the repeats of the strategies all folders ran and prints the
``simulate`` analysis (``table.txt``'s format: mIoU, paired differences to random, per-class IoU, pre-fill
against scratch, savings, all with the bootstrap over repeats and held-out images) for the pooled set,
and writes it as JSON with ``--json``.

``--recount FILE --setting NAME`` replaces each round's edit-model clicks by those ``prefill_design.py``
re-counted for another pre-fill (at the ``--prefill-from`` gate).

    python benchmarks/simulate_pool.py runs/simulate runs/simulate-seed6 [--split test] [--prefill-from 7]
        [--recount recount.json --setting tol1] [--json pooled.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from dgan_al.report.simulate_plot import plot_simulation
from dgan_al.workflows.simulate_analysis import analyse, curve_arrays, table_text
from dgan_al.workflows.simulate_settings import upgrade_settings
from prefill_design import recounted  # benchmarks/ is on the path when this script runs
from prefill_gate import gated

FREE = {"seed", "strategies", "repeats"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--json", type=Path, help="also write the analysis here")
    parser.add_argument("--plot", type=Path, help="also draw simulate.png's picture of the pooled test analysis here")
    parser.add_argument("--prefill-from", type=int, default=None,
                        help="count clicks as if files were pre-filled only from this many annotations on "
                             "(runs made with pre-fill in every round; see prefill_gate.py)")
    parser.add_argument("--recount", type=Path, help="prefill_design.py --write-recount's file")
    parser.add_argument("--setting", help="with --recount: the pre-fill setting whose edit clicks to use")
    args = parser.parse_args()
    recount = json.loads(args.recount.read_text()) if args.recount else None
    if recount is not None and args.setting not in recount["settings"]:
        print(f"{args.recount}: --setting must be one of {', '.join(recount['settings'])}", file=sys.stderr)
        return 2
    if recount is not None and (args.prefill_from or 1) not in recount["gates"]:
        print(f"{args.recount}: re-counted for gates {recount['gates']} only; use one as --prefill-from", file=sys.stderr)
        return 2
    settings = []
    for folder in args.folders:
        if not (folder / "simulate.json").is_file():
            print(f"{folder}: no simulate.json (run `dgan-al simulate --out {folder}` to the end first)", file=sys.stderr)
            return 2
        saved = json.loads((folder / "simulate.json").read_text())
        saved["settings"] = upgrade_settings(saved["settings"])
        runs = saved["runs"] if args.prefill_from is None else gated(saved["runs"], args.prefill_from)
        if args.prefill_from is not None and (not saved["settings"].get("prefill", True)
                                              or saved["settings"]["prefill_min_annotations"] > 1):
            print(f"{folder}: not pre-filled in every round, so --prefill-from cannot re-count it", file=sys.stderr)
            return 2
        if recount is not None:
            runs = recounted(runs, recount, folder, args.setting, args.prefill_from or 1)
            if runs is None:
                print(f"{folder}: {args.recount} lacks some of its rounds; run prefill_design.py on it again", file=sys.stderr)
                return 2
        settings.append((folder, saved["settings"], runs))
    first = settings[0][1]
    for folder, s, _ in settings[1:]:
        differ = sorted(k for k in s.keys() | first.keys() if k not in FREE and s.get(k) != first.get(k))
        if differ:
            print(f"{folder}: settings {differ} differ from {settings[0][0]}'s: not the same experiment", file=sys.stderr)
            return 2
    strategies = [name for name in first["strategies"] if all(name in s["strategies"] for _, s, _ in settings)]
    rows = []  # per pooled repeat: per strategy (its run dict, its runs/ file stem)
    for folder, _, runs in settings:
        by_key = {(r["repeat"], r["strategy"]): r for r in runs}
        for repeat in sorted({r["repeat"] for r in runs}):
            if all((repeat, name) in by_key for name in strategies):
                rows.append([(by_key[repeat, name], folder / "runs" / f"r{repeat}-{name}") for name in strategies])
    classes = list(rows[0][0][0]["curve"][-1][args.split]["class_iou"])

    def pooled(split: str) -> dict:
        conf = np.stack([np.stack([np.load(stem.with_suffix(".npz"))[split] for _, stem in row]) for row in rows])
        images, clicks = curve_arrays([[run for run, _ in row] for row in rows])
        return analyse(conf, images, clicks, strategies, seed=first.get("seed", 0), classes=classes)

    analysis = pooled(args.split)
    print(f"{len(rows)} repeats pooled from {', '.join(str(f) for f, _, _ in settings)}")
    print(table_text(analysis, args.split))
    if args.plot:  # the picture is of the test analysis, as simulate.png's
        plot_simulation({"test": analysis if args.split == "test" else pooled("test")}, args.plot, SimpleNamespace(**first))
        print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(analysis, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

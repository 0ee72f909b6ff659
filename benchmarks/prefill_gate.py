"""From how many annotations on should the exported files be pre-filled? Re-analysed from a finished simulation.

The pre-fill changes no label (the annotator corrects every file into the same truth) and so no model,
selection or mIoU: only the clicks. A simulation run with the pre-fill in every round (settings
``prefill_min_annotations`` 1, or older runs without the setting) therefore holds, per round, both what
the pre-filled file cost and what the empty one would have cost (its from-scratch count). For each gate
N this script counts the clicks of a loop that pre-fills only from an interpreter trained on at least N
annotated images, and prints per strategy the clicks per image of each round (gated against from
scratch, paired difference with its 90% interval over repeats) and the clicks needed to reach
``random``'s last-round test mIoU with their saving against ``random`` (the ``simulate`` analysis).

    python benchmarks/prefill_gate.py runs/simulate [--gates 1,7,13]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import fields
from pathlib import Path

from dgan_al.workflows.simulate import analyse_runs
from dgan_al.workflows.simulate_analysis import table_text
from dgan_al.workflows.simulate_settings import SimulateSettings, upgrade_settings


def gated(runs: list[dict], gate: int) -> list[dict]:
    """The runs with each round's pre-fill clicks (both corrections) replaced by the from-scratch count where
    the round's files came from an interpreter trained on fewer than ``gate`` images (the previous point's
    count)."""
    out = copy.deepcopy(runs)
    for run in out:
        curve = run["curve"]
        for before, point in zip(curve, curve[1:]):
            if before["n_annotations"] < gate:  # an empty file: both corrections cost the scratch count
                point["clicks"].update({k: point["clicks"]["scratch"] for k in ("prefill", "edit") if k in point["clicks"]})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a finished `dgan-al simulate --out` folder")
    parser.add_argument("--gates", default="1,7,13", help="values of prefill_min_annotations to compare")
    args = parser.parse_args()
    saved = json.loads((args.folder / "simulate.json").read_text())
    known = {f.name for f in fields(SimulateSettings)}
    raw = {k: v for k, v in upgrade_settings(saved["settings"]).items() if k in known}
    settings = SimulateSettings(**raw | {"strategies": tuple(raw["strategies"])})
    if not settings.prefill or settings.prefill_min_annotations > 1:
        print(f"{args.folder}: this simulation did not pre-fill every round, so the pre-filled cost of the rounds "
              "it left empty is unknown; run it with --prefill-min-annotations 1", file=sys.stderr)
        return 2
    for gate in (int(g) for g in args.gates.split(",")):
        test = analyse_runs(args.folder, gated(saved["runs"], gate), settings)["test"]
        print(f"\n== pre-fill from {gate} annotated image(s) on ==")
        kinds = [(k, key) for k, key in (("prefill", "diff"), ("edit", "edit_diff")) if key in
                 next(iter(test["prefill_vs_scratch"].values()))[0]]
        for name, rounds in test["prefill_vs_scratch"].items():
            for kind, key in kinds:
                print(f"  {name:<10} {kind:<7} clicks per image, exported file vs scratch: " + "; ".join(
                    f"round {e['round']} {e[kind]:.0f} vs {e['scratch']:.0f} {e[key]:+.0f} "
                    f"[{e[key + '_interval'][0]:+.0f}, {e[key + '_interval'][1]:+.0f}]" for e in rounds))
        sv = test["savings"]
        for kind, _ in kinds:
            print(f"  {kind} clicks to reach {sv['reference']}'s last-round test mIoU {sv['target_miou']:.3f}:")
            for name in test["curves"]:
                e = sv[name][f"clicks_{kind}"]
                if e["needed"] is None:
                    print(f"    {name:<10} not reached")
                    continue
                interval = "" if e["saved_interval"] is None else \
                    f" [{e['saved_interval'][0]:+.0f}, {e['saved_interval'][1]:+.0f}]"
                print(f"    {name:<10} {e['needed']:.0f} (saved {e['saved']:+.0f}{interval}, reached in "
                      f"{e['reached_share']:.0%} of draws); {test['curves'][name][f'clicks_{kind}'][-1]:.0f} "
                      "clicks over all rounds")
        if "effort_vs_naive" in test:  # the block of table.txt
            keep = ("level", "repeats", "held_out_images", "test_sampling_se", "effort_vs_naive")
            text = table_text({"curves": {}, **{k: test[k] for k in keep}}, "test")
            print(text[text.index("effort to reach"):].rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

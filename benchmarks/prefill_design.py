"""Which pre-fill is cheapest to correct? Re-counted on the rounds of `dgan-al simulate` folders.

The pre-fill changes no label, so another pre-fill (tracing tolerance, smallest region, dropping regions
the ensemble's members disagree on, the gate) changes only the clicks. ``simulate`` keeps every round's
predicted labels and JS (``prediction.npz``); for each annotated image this script re-traces the prediction
under each candidate setting and counts the edit model's clicks (``labelme.clicks.edit_clicks``) against
the oracle's truth, recomputed from the image's latent. The setting a round was exported with re-counts
exactly what the run recorded (checked on every pre-filled image the oracle counted with this
``EDIT_MODEL``; rounds counted with an earlier revision are re-counted with this one). ``--retrace``
also counts re-tracing what is wrong (``correction_clicks``, the conservative count) for some settings.

Printed per setting and gate: mean clicks per annotated image over all rounds and strategies, and per
round, with the paired difference to the shipped pre-fill and a 90% bootstrap interval over the repeats
(resampled within each folder). Works on finished or running folders (only finished rounds are read);
per-image counts are cached in ``FOLDER/prefill_design.json``, so a second call only counts new rounds.
``--write-recount`` stores every round's total for ``simulate_pool.py`` and ``simulate_compare.py``
(``--recount FILE --setting NAME``).

    python benchmarks/prefill_design.py runs/effort-0 [runs/effort-6] [--reference 0.5px:7] [--retrace 1px]
        [--write-recount recount.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

from dgan_al.files import atomic_write_json
from dgan_al.generators.toy_faces import load_toy_faces
from dgan_al.labelme.clicks import EDIT_MODEL, TruthRegions, correction_clicks, edit_clicks
from dgan_al.labelme.polygons import mask_to_polygons
from dgan_al.workflows.export import PREFILL_TRACING, shape_disagreement
from dgan_al.workspace.config import RunSettings
from dgan_al.workspace.layout import Workspace

# name -> (mask_to_polygons options, js_ratio: drop a region whose mean JS exceeds this multiple of the
# image's mean JS; None keeps every region)
SETTINGS = {
    "0.5px": ({"tolerance": 0.5, "min_iou": 0.0, "min_pixels": 6}, None),  # shipped until 2026-12-06
    "1px": ({"tolerance": 1.0, "min_iou": 0.0, "min_pixels": 6}, None),
    "1.5px": ({"tolerance": 1.5, "min_iou": 0.0, "min_pixels": 6}, None),
    "2px": ({"tolerance": 2.0, "min_iou": 0.0, "min_pixels": 6}, None),
    "1px-min20": ({"tolerance": 1.0, "min_iou": 0.0, "min_pixels": 20}, None),
    "1px-min40": ({"tolerance": 1.0, "min_iou": 0.0, "min_pixels": 40}, None),
    "1px-js3": ({"tolerance": 1.0, "min_iou": 0.0, "min_pixels": 6}, 3.0),
    "1px-js2": ({"tolerance": 1.0, "min_iou": 0.0, "min_pixels": 6}, 2.0),
    "1px-js1.5": ({"tolerance": 1.0, "min_iou": 0.0, "min_pixels": 6}, 1.5),
}
GATES = (1, 4, 7, 10, 13)
SHIPPED = next(name for name, (tracing, ratio) in SETTINGS.items() if tracing == PREFILL_TRACING and ratio is None)
SHIPPED_GATE = RunSettings().prefill_min_annotations
EARLIER_TRACING = SETTINGS["0.5px"][0]  # what a round exported before selection.json recorded its tracing


def exported_with(selection: dict) -> str | None:
    """The setting a round's files were pre-filled with (None: not pre-filled, or a tracing not listed here)."""
    if not selection["prefill"]["used"]:
        return None
    tracing = selection["prefill"].get("tracing", EARLIER_TRACING)
    return next((name for name, (t, ratio) in SETTINGS.items() if t == tracing and ratio is None), None)


def prefill(labels: np.ndarray, js: np.ndarray, classes: list[str], setting: str) -> list[dict]:
    """The pre-filled shapes of one image (labels uint8 [H, W], js [H, W]) under ``setting``: a dropped
    region (``js_ratio``) shows what is painted under it, as an unwritten polygon would."""
    tracing, js_ratio = SETTINGS[setting]
    shapes = mask_to_polygons(labels, classes, **tracing)
    if js_ratio is None:
        return shapes
    limit = js_ratio * float(js.mean())
    return [s for s, d in zip(shapes, shape_disagreement(shapes, js)) if d <= limit]


def finished_rounds(folder: Path):
    """(repeat, strategy, round, trained_on, round folder) of every round the oracle finished, with its
    prediction kept; trained_on = images annotated before the round (the exporting model's)."""
    for run in sorted((folder / "work").glob("r*/*")):
        match = re.fullmatch(r"r(\d+)", run.parent.name)
        if not match or run.name == "base" or not (run / "rounds").is_dir():
            continue
        trained_on = 0
        for round_dir in sorted((run / "rounds").glob("round_[0-9][0-9][0-9]")):
            clicks = round_dir / "clicks.json"
            if not clicks.is_file():
                break
            annotated = json.loads(clicks.read_text())["items"]
            if (round_dir / "prediction.npz").is_file():
                yield int(match.group(1)), run.name, int(round_dir.name[6:]), trained_on, round_dir, annotated
            trained_on += len(annotated)


def count(folder: Path, generator, classes: list[str], truth_kind: str, retrace: tuple[str, ...] = ()) -> dict:
    """Per finished round: {key: {"trained_on", "prefilled", "images": {id: {"scratch", setting: edit,
    "retrace": {setting: clicks}}}}}, the re-tracing count only for the settings in ``retrace``; cached in
    FOLDER/prefill_design.json."""
    cache_path = folder / "prefill_design.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    wanted = {"settings": {k: [v[0], v[1]] for k, v in SETTINGS.items()}, "edit_model": EDIT_MODEL}
    if {k: cache.get(k) for k in wanted} != wanted:
        cache = {**wanted, "rounds": {}}
    for repeat, strategy, number, trained_on, round_dir, annotated in finished_rounds(folder):
        key = f"r{repeat}/{strategy}/{number}"
        done = cache["rounds"].get(key)
        if done and all(r in e.get("retrace", {}) for e in done["images"].values() for r in retrace):
            continue
        selection = json.loads((round_dir / "selection.json").read_text())
        same_model = json.loads((round_dir / "clicks.json").read_text()).get("edit_model") == EDIT_MODEL
        exported = exported_with(selection)  # what the run recorded its clicks for
        z_of = {item["id"]: item["z"] for item in selection["items"]}
        with np.load(round_dir / "prediction.npz") as data:
            index = {str(i): k for k, i in enumerate(data["ids"])}
            labels, js = data["labels"], data["js"].astype(np.float32)
        ids = list(annotated)
        z = torch.tensor([z_of[i] for i in ids], dtype=torch.float32)
        masks = generator.oracle_mask(z, truth=truth_kind, images=generator.synthesize(z).images.numpy())
        images = done["images"] if done else {}
        for i, mask in zip(ids, masks):
            if i not in images:
                regions = TruthRegions(mask)
                entry = {"scratch": annotated[i]["scratch"]}
                for setting in SETTINGS:
                    shapes = prefill(labels[index[i]], js[index[i]], classes, setting)
                    entry[setting] = edit_clicks(shapes, regions, classes).clicks
                if same_model and exported and entry[exported] != annotated[i]["edit"]:
                    raise SystemExit(f"{round_dir}: {i}: its pre-fill ({exported}) re-counts {entry[exported]} clicks, "
                                     f"the run recorded {annotated[i]['edit']}: not the pre-fill this script models")
                images[i] = entry
            counted = images[i].setdefault("retrace", {})
            for setting in (r for r in retrace if r not in counted):
                shapes = prefill(labels[index[i]], js[index[i]], classes, setting)
                counted[setting] = correction_clicks(shapes, mask, classes).clicks
            if exported in counted and counted[exported] != annotated[i]["prefill"]:
                raise SystemExit(f"{round_dir}: {i}: its pre-fill ({exported}) re-traces for {counted[exported]} "
                                 f"clicks, the run recorded {annotated[i]['prefill']}: not the pre-fill this script models")
        cache["rounds"][key] = {"trained_on": trained_on, "prefilled": selection["prefill"]["used"], "images": images}
        atomic_write_json(cache_path, cache)
        print(f"  counted {folder.name} {key}: {len(images)} images", file=sys.stderr)
    return cache["rounds"]


def cost(entry: dict, trained_on: int, setting: str, gate: int, kind: str = "edit") -> int:
    """One image's clicks: from scratch below the gate, else correcting the pre-fill of ``setting`` by
    editing (``kind`` "edit") or re-tracing ("retrace")."""
    if trained_on < gate:
        return entry["scratch"]
    return entry[setting] if kind == "edit" else entry["retrace"][setting]


def recounted(runs: list[dict], recount: dict, folder: Path, setting: str, gate: int) -> list[dict] | None:
    """The runs with each round's edit clicks (and re-tracing clicks, where counted) taken from
    ``prefill_design.py``'s re-count (None: a round missing)."""
    rounds = recount["folders"].get(str(folder.resolve()), {})
    out = copy.deepcopy(runs)
    for run in out:
        first = run["curve"][0]["clicks"]
        first.setdefault("edit", first["scratch"])  # round 0 is never pre-filled (older folders lack the count)
        for point in run["curve"][1:]:
            entry = rounds.get(f"r{run['repeat']}/{run['strategy']}/{point['round']}")
            if entry is None:
                return None
            point["clicks"]["edit"] = entry["clicks"][setting][str(gate)]
            if setting in entry.get("retrace", {}):  # re-traced too: the conservative count of the same files
                point["clicks"]["prefill"] = entry["retrace"][setting][str(gate)]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="`dgan-al simulate --out` folders (running or finished)")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--write-recount", type=Path, help="write every round's clicks per setting and gate here")
    parser.add_argument("--reference", default=f"{SHIPPED}:{SHIPPED_GATE}",
                        help="SETTING:GATE the differences are taken against (default: the shipped pre-fill)")
    parser.add_argument("--retrace", default="", help="comma-separated settings also counted by re-tracing what is "
                                                      "wrong (correction_clicks; slower), e.g. shipped,tol1")
    args = parser.parse_args()
    args.retrace = tuple(r for r in args.retrace.split(",") if r)
    ref_setting, _, ref_gate = args.reference.rpartition(":")
    if ref_setting not in SETTINGS or not ref_gate.isdigit():
        print(f"--reference: SETTING:GATE with SETTING one of {', '.join(SETTINGS)}", file=sys.stderr)
        return 2
    unknown = [r for r in args.retrace if r not in SETTINGS]
    if unknown:
        print(f"--retrace: unknown settings {unknown}; use some of {', '.join(SETTINGS)}", file=sys.stderr)
        return 2
    generator = load_toy_faces()
    per_repeat = {}  # (folder, repeat) -> [(strategy, round, trained_on, entry)]
    recount = {}
    for folder in args.folders:
        saved = json.loads((folder / "settings.json").read_text())
        if saved.get("prefill_min_annotations", 1) > 1 or not saved.get("prefill", True):
            print(f"{folder}: not pre-filled in every round; rerun it with --prefill-min-annotations 1", file=sys.stderr)
            return 2
        classes = Workspace.find(next((folder / "work").glob("r*/base"))).config.classes
        rounds = count(folder, generator, classes, saved.get("truth", "visible"), args.retrace)
        for key, r in rounds.items():
            repeat, strategy, number = key.split("/")
            for entry in r["images"].values():
                per_repeat.setdefault((str(folder), repeat), []).append((strategy, int(number), r["trained_on"], entry))
            recount.setdefault(str(folder.resolve()), {})[key] = {
                "trained_on": r["trained_on"],
                "clicks": {s: {str(g): sum(cost(e, r["trained_on"], s, g) for e in r["images"].values()) for g in GATES}
                           for s in SETTINGS},
                "retrace": {s: {str(g): sum(cost(e, r["trained_on"], s, g, "retrace") for e in r["images"].values())
                                for g in GATES} for s in args.retrace}}
    if not per_repeat:
        print("no finished round with a prediction.npz yet", file=sys.stderr)
        return 2
    keys = sorted(per_repeat)
    rng = np.random.default_rng(0)
    folders = sorted({f for f, _ in keys})
    draws = []  # each draw: repeats resampled within each folder
    for _ in range(args.draws):
        draws.append(np.concatenate([rng.choice([k for k, key in enumerate(keys) if key[0] == f],
                                                size=sum(key[0] == f for key in keys)) for f in folders]))
    rounds = sorted({number for rows in per_repeat.values() for _, number, _, _ in rows})
    print(f"{len(keys)} repeats, {sum(len(v) for v in per_repeat.values())} annotated images; edit-model clicks per "
          f"image (paired difference to {ref_setting} at gate {ref_gate}, 90% interval over repeats)")

    def mean_per_image(setting: str, gate: int, only_round: int | None = None) -> np.ndarray:
        """Per repeat: mean clicks per annotated image: [len(keys)]."""
        out = []
        for key in keys:
            rows = [(t, e) for _, n, t, e in per_repeat[key] if only_round is None or n == only_round]
            out.append(np.mean([cost(e, t, setting, gate) for t, e in rows]) if rows else np.nan)
        return np.array(out)

    scratch = np.array([np.mean([e["scratch"] for *_, e in per_repeat[key]]) for key in keys])
    print(f"  from scratch: {scratch.mean():.1f} clicks per image")
    reference = mean_per_image(ref_setting, int(ref_gate))
    for gate in GATES:
        for setting in SETTINGS:
            values = mean_per_image(setting, gate)
            diff = values - reference
            boot = np.array([diff[d].mean() for d in draws])
            lo, hi = np.percentile(boot, [5, 95])
            by_round = ", ".join(f"r{n} {np.nanmean(mean_per_image(setting, gate, n)):.0f}" for n in rounds)
            print(f"  gate {gate:>2} {setting:<11} {values.mean():6.1f} ({values.mean() / scratch.mean():.0%} of "
                  f"scratch)  {diff.mean():+6.1f} [{lo:+6.1f}, {hi:+6.1f}]   per round: {by_round}")
    if args.write_recount:
        atomic_write_json(args.write_recount, {"settings": list(SETTINGS), "gates": list(GATES), "folders": recount})
        print(f"recount: {args.write_recount}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

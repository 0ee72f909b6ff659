"""``workspace_status``: rounds, annotations per class, pending / done / skipped files, what to do next."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from dgan_al.workflows.export import OWN_FILES, read_selection
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.errors import UserError
from dgan_al.workspace.layout import Workspace
from dgan_al.workspace.rounds import read_round_state


@dataclass
class RoundStatus:
    number: int
    stage: str
    exported: int
    done: int = 0
    unrealistic: int = 0
    pending: int = 0
    imported: int = 0
    score_quantiles: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)


@dataclass
class WorkspaceStatus:
    root: str
    generator: str
    classes: list[str]
    annotations: int
    class_totals: dict
    skipped: int
    removed: int
    rounds: list[RoundStatus]
    next_step: str
    evaluation: str = ""  # the latest cross-validation on record, in words


def workspace_status(ws: Workspace) -> WorkspaceStatus:
    store = AnnotationStore(ws.annotations_dir)
    rounds, damaged = [], []
    for number in ws.rounds():
        folder = ws.round_dir(number)
        try:
            state = read_round_state(folder)
        except UserError as err:
            damaged.append(str(err))
            state = {"stage": "damaged"}
        selection = read_selection(folder) or {}
        if selection == {} and (folder / "selection.json").is_file():
            damaged.append(f"{folder / 'selection.json'}: damaged (not valid JSON): restore it from a backup")
        items = selection.get("items", [])
        rs = RoundStatus(number, state.get("stage", "unknown"), len(items), times=state.get("times", {}),
                         score_quantiles=selection.get("pool", {}).get("score_quantiles", {}))
        for path in folder.glob("*.json"):
            if path.name in OWN_FILES:
                continue
            try:
                flags = json.loads(path.read_text(encoding="utf-8")).get("flags") or {}
            except (ValueError, OSError, AttributeError):
                flags = {}
            if flags.get("unrealistic") is True:
                rs.unrealistic += 1
            elif flags.get("done") is True:
                rs.done += 1
                rs.imported += int(path.stem in store.records)
            else:
                rs.pending += 1
        rounds.append(rs)
    latest = rounds[-1] if rounds else None
    waiting = sum(r.done - r.imported for r in rounds)
    if damaged:
        step = "fix the damaged round file(s) first: " + "; ".join(damaged)
    elif latest is None and store.records:  # e.g. a fresh clone of a workspace whose rounds/ is not committed
        step = f"run `dgan-al next-round`: it trains on the {len(store.records)} annotation(s) and exports a round"
    elif latest is None:
        step = "no rounds and no annotations here: `dgan-al init DIR` makes a workspace (round 000: the mean image)"
    elif latest.stage != "complete":
        step = f"round {latest.number:03d} was interrupted: run `dgan-al next-round` to finish it"
    elif waiting > 0:
        step = f"{waiting} finished file(s) not imported yet: run `dgan-al next-round`"
    elif latest.pending and not latest.done:
        step = f"annotate round {latest.number:03d}: `dgan-al annotate {latest.number}` (tick 'done' when finished)"
    elif latest.pending:
        step = (f"round {latest.number:03d} has {latest.pending} image(s) still open: annotate them, or run "
                "`dgan-al next-round` to go on with what is done")
    else:
        step = "run `dgan-al next-round`, or build the dataset: `dgan-al build-dataset`"
    return WorkspaceStatus(str(ws.root), ws.config.generator.spec, list(ws.config.classes), len(store.records),
                           store.class_totals(ws.config.classes), len(store.skipped), len(store.removed), rounds, step,
                           _evaluation(ws, store))


def _evaluation(ws: Workspace, store: AnnotationStore) -> str:
    from dgan_al.workflows.cross_validation import history

    runs = history(ws)
    current = store.set_hash()
    if not runs:
        return "no cross-validation yet: `dgan-al evaluate` measures the interpreter" if len(store.records) >= 2 else ""
    last = next((r for r in runs if r.annotation_set == current), None)
    if last is None:
        last = runs[-1]
        tail = " (before the latest annotations: `dgan-al evaluate` to update)"
    else:
        tail = " (the current annotations)"
    return (f"interpreter cross-validated mIoU {last.summary.miou_mean:.3f} ± {last.summary.miou_std:.3f} on "
            f"{last.n_annotations} annotations{tail}")

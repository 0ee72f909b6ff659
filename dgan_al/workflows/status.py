"""``workspace_status``: rounds, annotations per class, each round's files (done, unrealistic, with a
problem, edited, untouched), what to do next; ``round_files_status``: the same for one round's files.

``WorkspaceStatus.to_json()`` is what ``dgan-al status --json`` prints, a structure scripts may rely on
(``"format": 1``; keys are only ever added)::

    {"format": 1, "workspace": "/abs/path", "generator": "toy-faces",
     "annotations": 4, "skipped": 2, "removed": 0,            # imported, skipped as unrealistic, removed
     "classes": {"background": {"images": 4, "pixels": 39212}, ...},   # in the workspace's class order
     "keypoints": {"nose_tip": {"images": 3, "occluded": 1, "annotated": 4}, ...},   # only with [keypoints] names:
                   # images where it is placed (occluded among them), of the images annotated for keypoints
     "rounds": [{"round": 1, "stage": "complete",             # started | trained | complete | damaged
                 "exported": 4, "done": 2, "imported": 2, "unrealistic": 2,
                 "problem": 0, "edited": 0, "untouched": 0, "median_score": 3.1,   # null before scoring
                 "files": [{"id": "s0-000029", "state": "done", "imported": true, "problem": "",
                            "json": "rounds/round_001/annotate/s0-000029.json"}, ...]}, ...],
     "damaged": [],                      # one message per damaged round file (then status exits 2)
     "cross_validation": {"n_annotations": 4, "miou_mean": 0.61, "miou_std": 0.05, "current": true},  # or null
     "photo_pool": {"folder": "/abs/photos", "photos": 240, "unreadable": [],   # only in a photo pool's workspace
                    "changes": {"added": [], "removed": [], "changed": [], "renamed": [["a.jpg", "b.jpg"]]}},
     "next": "run `dgan-al next-round`, ..."}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dgan_al.errors import UserError
from dgan_al.files import sha256_bytes
from dgan_al.labelme import LabelMeError, read_labelme
from dgan_al.labelme.write import FORMAT_VERSION
from dgan_al.workflows.export import OWN_FILES, read_selection
from dgan_al.workflows.pool import photo_pool_status
from dgan_al.workflows.importing import exported_items, finished_file_problems, selection_fix
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import RoundFiles, Workspace
from dgan_al.workspace.rounds import read_round_state

# What a file of a round is, as a person sees it. Only "done" and "unrealistic" are finished.
FILE_STATES = ("done", "unrealistic", "problem", "edited", "untouched")


@dataclass
class FileStatus:
    id: str
    json_path: Path  # the LabelMe file
    image_path: Path  # the image LabelMe shows for it
    state: str  # one of FILE_STATES
    problem: str = ""  # for "problem": what is wrong and the fix
    imported: bool = False  # for "done": in annotations/ already

    @property
    def finished(self) -> bool:
        return self.state in ("done", "unrealistic")


@dataclass
class RoundStatus:
    number: int
    stage: str
    exported: int
    done: int = 0
    unrealistic: int = 0
    pending: int = 0  # not finished: with a problem, edited or untouched
    imported: int = 0
    score_quantiles: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)
    files: list[FileStatus] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(f.state == state for f in self.files)


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
    cross_validation: dict | None = None  # the same as numbers (see the module doc)
    damaged: list[str] = field(default_factory=list)  # damaged round files: what is wrong and the fix
    keypoint_totals: dict = field(default_factory=dict)  # name -> images, occluded, annotated (keypoint_totals)
    photo_pool: dict | None = None  # a photo pool: folder, photos, changes since the last round (pool.photo_pool_status)

    def to_json(self) -> dict:
        """The documented structure of ``status --json`` (see the module doc)."""
        root = Path(self.root)

        def rel(path: Path) -> str:
            return str(path.relative_to(root)) if root in path.parents else str(path)

        rounds = [{"round": r.number, "stage": r.stage, "exported": r.exported, "done": r.done,
                   "imported": r.imported, "unrealistic": r.unrealistic,
                   **{state: r.count(state) for state in ("problem", "edited", "untouched")},
                   "median_score": r.score_quantiles.get("median"),
                   "files": [{"id": f.id, "state": f.state, "imported": f.imported, "problem": f.problem,
                              "json": rel(f.json_path)} for f in r.files]} for r in self.rounds]
        return {"format": 1, "workspace": self.root, "generator": self.generator, "annotations": self.annotations,
                "skipped": self.skipped, "removed": self.removed,
                "classes": {name: {"images": images, "pixels": pixels}
                            for name, (images, pixels) in self.class_totals.items()},
                **({"keypoints": {name: {"images": t["images"], "occluded": t["occluded"], "annotated": t["annotated"]}
                                  for name, t in self.keypoint_totals.items()}} if self.keypoint_totals else {}),
                "rounds": rounds, "damaged": self.damaged, "cross_validation": self.cross_validation,
                **({"photo_pool": self.photo_pool} if self.photo_pool is not None else {}),
                "next": self.next_step}


def round_files_status(folder: Path, ws: Workspace | None = None,
                       store: AnnotationStore | None = None) -> list[FileStatus]:
    """Every file of the round ``folder`` (``rounds/round_NNN``), in the order LabelMe lists them.

    With a workspace, a file ticked ``done`` gets exactly the import's checks and a file not ticked
    yet the strict reader's, so a problem shows before the import refuses it; without one (a round
    folder outside any workspace) only the flags are read. "untouched" is a file byte-identical to its
    export (for rounds exported before the JSON's checksum was recorded: still in our format version).
    """
    files = RoundFiles(folder)
    annotate = files.annotate
    selection, _ = _round_selection(folder)
    exported = {item["id"]: item for item in selection["items"] if isinstance(item, dict) and "id" in item}
    paths = {p.stem: p for p in annotate.glob("*.json") if p.name not in OWN_FILES}
    for id, item in exported.items():
        paths.setdefault(id, annotate / str(item.get("json", f"{id}.json")))
    out = []
    for id in sorted(paths):
        json_path, item = paths[id], exported.get(id)
        image = annotate / str(item.get("image", f"{id}.png")) if item else json_path.with_suffix(".png")
        status = FileStatus(id, json_path, image, "untouched")
        _classify(status, item, ws, store)
        out.append(status)
    return out


def _classify(status: FileStatus, item: dict | None, ws: Workspace | None, store: AnnotationStore | None) -> None:
    path = status.json_path
    if not path.is_file():
        return  # an exported image whose JSON is gone: LabelMe shows it blank
    data = path.read_bytes()
    try:
        raw = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        status.state, status.problem = "problem", f"not valid JSON{where}; fix it in a text editor or LabelMe"
        return
    flags = raw.get("flags") if isinstance(raw, dict) else None
    flags = flags if isinstance(flags, dict) else {}
    done, unrealistic = flags.get("done") is True, flags.get("unrealistic") is True
    if done and unrealistic:
        status.state, status.problem = "problem", "both 'done' and 'unrealistic' are ticked: untick one in LabelMe"
    elif unrealistic:
        status.state = "unrealistic"
    elif done and ws is None:
        status.state = "done"
    elif done:
        if item is None:
            status.state, status.problem = "problem", ("this round did not export it (not in its selection.json): "
                                                       "annotate only the exported files, under their own names")
            return
        problems = _finished_file_problems(ws, path, item, status.image_path)
        if problems:
            status.state, status.problem = "problem", "; ".join(problems)
        else:
            status.state = "done"
            status.imported = store is not None and status.id in store.records
    elif _untouched(raw, data, item):
        status.state = "untouched"
    else:
        status.state = "edited"
        if ws is not None:
            try:
                read_labelme(path, ws.config.classes, ws.config.keypoints.names)
            except LabelMeError as err:
                status.state, status.problem = "problem", "; ".join(err.problems)


def _finished_file_problems(ws: Workspace, path: Path, item: dict, image: Path) -> list[str]:
    prefix = f"{path.relative_to(ws.root) if ws.root in path.parents else path}: "
    return [p.removeprefix(prefix) for p in finished_file_problems(ws, path, item, image)]


def _untouched(raw, data: bytes, item: dict | None) -> bool:
    if item is not None and "json_sha256" in item:
        return sha256_bytes(data) == item["json_sha256"]
    return isinstance(raw, dict) and raw.get("version") == FORMAT_VERSION  # LabelMe writes its own version


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
        selection, problem = _round_selection(folder)
        if problem:
            damaged.append(problem)
        pool = selection.get("pool")
        quantiles = pool.get("score_quantiles") if isinstance(pool, dict) else None
        times = state.get("times")
        rs = RoundStatus(number, state.get("stage", "unknown"), len(selection["items"]),
                         times=times if isinstance(times, dict) else {},
                         score_quantiles=quantiles if isinstance(quantiles, dict) else {},
                         files=round_files_status(folder, ws, store))
        rs.done, rs.unrealistic = rs.count("done"), rs.count("unrealistic")
        rs.pending = sum(not f.finished for f in rs.files)
        rs.imported = sum(f.imported for f in rs.files)
        rounds.append(rs)
    latest = rounds[-1] if rounds else None
    waiting = sum(r.done - r.imported for r in rounds)
    broken = [(r.number, f) for r in rounds for f in r.files if f.state == "problem"]
    if damaged:
        step = "fix the damaged round file(s) first: " + "; ".join(damaged)
    elif latest is None and store.records:  # e.g. a fresh clone of a workspace whose rounds/ is not committed
        step = f"run `dgan-al next-round`: it trains on the {len(store.records)} annotation(s) and exports a round"
    elif latest is None:
        step = "no rounds and no annotations here: `dgan-al init DIR` makes a workspace (round 000: the mean image)"
    elif latest.stage != "complete":
        step = f"round {latest.number:03d} was interrupted: run `dgan-al next-round` to finish it"
    elif broken:
        number = broken[0][0]
        step = (f"{len(broken)} file(s) have a problem (listed above): fix them in LabelMe (`dgan-al annotate "
                f"{number}`), then run `dgan-al next-round`")
    elif waiting > 0:
        step = f"{waiting} finished file(s) not imported yet: run `dgan-al next-round`"
    elif latest.pending and not latest.done:
        step = f"annotate round {latest.number:03d}: `dgan-al annotate {latest.number}` (tick 'done' when finished)"
    elif latest.pending:
        step = (f"round {latest.number:03d} has {latest.pending} image(s) still open: annotate them, or run "
                "`dgan-al next-round` to go on with what is done")
    else:
        step = "run `dgan-al next-round`, or build the dataset: `dgan-al build-dataset`"
    evaluation, cross_validation = _evaluation(ws, store)
    return WorkspaceStatus(str(ws.root), ws.config.generator.spec, list(ws.config.classes), len(store.records),
                           store.class_totals(ws.config.classes), len(store.skipped), len(store.removed), rounds, step,
                           evaluation, cross_validation, damaged,
                           store.keypoint_totals(ws.config.keypoints.names),
                           photo_pool_status(ws) if ws.config.photo_pool else None)


def _round_selection(folder: Path) -> tuple[dict, str]:
    """The round's selection record (``items`` always a list) and, if the file is damaged, what is wrong
    and the fix, as the import says it."""
    path = RoundFiles(folder).selection
    _, damaged = exported_items(folder)
    if damaged:
        return {"items": []}, (f"{path}: damaged ({damaged}): this is dgan-al's record of what the round exported, "
                               f"not an annotation file; {selection_fix(folder)}")
    selection = read_selection(folder)
    return ({"items": [], **selection} if isinstance(selection, dict) else {"items": []}), ""


def find_workspace(folder: Path) -> Workspace | None:
    """The workspace ``folder`` lies in, or None (a round folder copied out of its workspace)."""
    try:
        return Workspace.find(folder)
    except UserError:
        return None


def _evaluation(ws: Workspace, store: AnnotationStore) -> tuple[str, dict | None]:
    """The latest cross-validation on record: in words, and as numbers (None without one)."""
    from dgan_al.workflows.cross_validation import history

    runs = history(ws)
    current = store.set_hash()
    if not runs:
        text = "no cross-validation yet: `dgan-al evaluate` measures the interpreter" if len(store.records) >= 2 else ""
        return text, None
    last = next((r for r in runs if r.annotation_set == current), None)
    if last is None:
        last = runs[-1]
        tail = " (before the latest annotations: `dgan-al evaluate` to update)"
    else:
        tail = " (the current annotations)"
    numbers = {"n_annotations": last.n_annotations, "miou_mean": float(last.summary.miou_mean),
               "miou_std": float(last.summary.miou_std), "current": last.annotation_set == current}
    return (f"interpreter cross-validated mIoU {last.summary.miou_mean:.3f} ± {last.summary.miou_std:.3f} on "
            f"{last.n_annotations} annotations{tail}"), numbers

"""Mutated LabelMe files through the import, judged against the real LabelMe (tests and benchmarks/faults.py).

``mutations()`` draws one mutation of a finished annotation file: a value anywhere in the JSON tree set to
any JSON value (NaN and huge numbers included), a key deleted or added, the flags written as a hand edit
would, deep nesting, a non-object top level, a truncated or bit-flipped file, a text value or key of
10^4 to 10^6 characters. ``judge`` imports the mutated workspace and sorts the outcome: a refusal (a
``UserError`` naming the file and the fix in at most ``MAX_MESSAGE`` characters, nothing changed), pending,
skipped, or an acceptance, which is right only if the real LabelMe reads the file and its
``shapes_to_label`` gives the mask we stored.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from dgan_al.errors import UserError
from dgan_al.labelme.format import IGNORE
from dgan_al.workflows.importing import import_annotations
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace

LEAVES = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
          | st.text(max_size=12) | st.sampled_from(["mean.png", "polygon", "rectangle", "circle", "skin", "hair",
                                                    "__ignore__", "_background_", "../mean.png", "true"]))
VALUES = st.recursive(LEAVES, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                      max_leaves=8)
FLAG_VALUES = st.sampled_from([True, False, "true", "false", 1, 0, None, [], {}])
LONG = (10_000, 100_000, 1_000_000)  # characters of a "long" mutation's text
# a refusal's message quotes user text cut (dgan_al.errors.quote): even 20 problems stay far below this,
# and a long text quoted whole goes far above it (a label of 10^6 characters once gave 2,000,106)
MAX_MESSAGE = 5_000


def _paths(node, prefix=()):
    """Every path (tuple of keys / indices) in a JSON tree, the root included."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _parent(doc, path):
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutations(draw, original: dict) -> bytes:
    """The bytes of one mutated copy of ``original`` (a parsed LabelMe file)."""
    doc = json.loads(json.dumps(original))
    kind = draw(st.sampled_from(["set", "set", "delete", "add", "flags", "flags", "nest", "top", "truncate", "flip",
                                 "points", "long"]))
    paths = list(_paths(doc))[1:]
    if kind == "set":
        path = draw(st.sampled_from(paths))
        _parent(doc, path)[path[-1]] = draw(VALUES)
    elif kind == "delete":
        path = draw(st.sampled_from(paths))
        del _parent(doc, path)[path[-1]]
    elif kind == "add":
        targets = [p for p in [(), *paths] if isinstance(_parent(doc, p + (None,)), dict)]
        target = _parent(doc, draw(st.sampled_from(targets)) + (None,))
        target[draw(st.text(max_size=10))] = draw(VALUES)
    elif kind == "flags":
        doc["flags"] = {"done": draw(FLAG_VALUES), "unrealistic": draw(FLAG_VALUES)}
    elif kind == "nest":
        depth = draw(st.sampled_from([10, 500, 3000, 100_000]))
        path = draw(st.sampled_from(paths))
        _parent(doc, path)[path[-1]] = json.loads("[" * min(depth, 900) + "]" * min(depth, 900)) if depth < 900 else None
        if depth >= 900:  # deeper than Python's json would build: written as text
            text = json.dumps(doc).replace("null", "[" * depth + "]" * depth, 1)
            return text.encode()
    elif kind == "top":
        return json.dumps(draw(st.sampled_from([None, [], "text", 3, {}, [doc]]))).encode()
    elif kind == "long":  # a label, imagePath, flag name, ... of up to a million characters
        texts = [p for p in paths if isinstance(_parent(doc, p)[p[-1]], str)]
        keys = [p for p in [(), *paths] if isinstance(_parent(doc, p + (None,)), dict) and _parent(doc, p + (None,))]
        length = draw(st.sampled_from(LONG))
        letter = draw(st.sampled_from("ax/é"))
        if texts and draw(st.booleans()):
            path = draw(st.sampled_from(texts))
            _parent(doc, path)[path[-1]] = letter * length
        else:
            target = _parent(doc, draw(st.sampled_from(keys)) + (None,))
            key = draw(st.sampled_from(sorted(target)))
            target[letter * length] = target.pop(key)
    elif kind == "points":
        shape = draw(st.sampled_from(doc["shapes"])) if doc.get("shapes") else None
        if shape is not None:
            scale = draw(st.sampled_from([1e-9, 0.5, 2.0, 1e6, math.inf, math.nan, -1.0]))
            shape["points"] = [[x * scale, y] for x, y in shape["points"]]
    data = json.dumps(doc, indent=1).encode()
    if kind == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif kind == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1:]
    return data


def labelme_mask(json_path: Path, height: int, width: int, classes: list[str]) -> np.ndarray:
    """The real LabelMe's reading and rasterisation of a file (its -1 for __ignore__ shown as IGNORE)."""
    import labelme._label_file as lm_file
    import labelme.utils as lm_utils

    values = {**{c: i for i, c in enumerate(classes)}, "_background_": 0, "__ignore__": -1}
    data = lm_file.read_label_file(str(json_path))
    cls, _ = lm_utils.shapes_to_label((height, width), data.shapes, values)
    return np.where(cls == -1, IGNORE, cls).astype(np.uint8)


def judge(base: Path, work: Path, data: bytes, name: str = "rounds/round_000/annotate/mean.json") -> tuple[str, str]:
    """Import a copy of workspace ``base`` whose file ``name`` holds ``data``: (outcome, detail).

    outcome: "refused" (clear message naming the file, nothing changed), "pending", "skipped",
    "accepted" (the real LabelMe agrees on the mask), or "wrong: ..." for anything else.
    """
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base, work)
    path = work / name
    path.write_bytes(data)
    ws = Workspace.find(work)
    before = {p: p.read_bytes() for p in (work / "annotations").rglob("*") if p.is_file()}
    try:
        report = import_annotations(ws, AnnotationStore(ws.annotations_dir))
    except UserError as err:
        after = {p: p.read_bytes() for p in (work / "annotations").rglob("*") if p.is_file()}
        if path.name not in str(err) or err.fix is None:
            return "wrong: message does not name the file and the fix", str(err)[:300]
        if len(str(err)) > MAX_MESSAGE:
            return f"wrong: a message of {len(str(err))} characters", str(err)[:300]
        if after != before or path.read_bytes() != data:
            return "wrong: refused but changed files", str(err)
        return "refused", str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
    if path.read_bytes() != data:
        return "wrong: the person's file was changed", ""
    if report.imported:
        store = AnnotationStore(ws.annotations_dir)
        ours = np.asarray(Image.open(store.mask_path(report.imported[0])))
        try:
            theirs = labelme_mask(path, ours.shape[0], ours.shape[1], ws.config.classes)
        except Exception as err:  # noqa: BLE001 - LabelMe refusing a file we accepted is the finding
            return "wrong: accepted a file the real LabelMe cannot read", repr(err)
        if not np.array_equal(ours, theirs):
            return "wrong: our mask differs from the real LabelMe's", f"{int((ours != theirs).sum())} pixels"
        return "accepted", ""
    try:
        import labelme._label_file as lm_file

        lm_file.read_label_file(str(path))
    except Exception as err:  # noqa: BLE001
        return "wrong: called pending/skipped a file the real LabelMe cannot read", repr(err)
    return ("skipped", "") if report.skipped else ("pending", "")

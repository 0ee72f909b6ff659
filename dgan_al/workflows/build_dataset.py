"""``build-dataset``: the labelled-data factory — generated images with the interpreter's masks.

    OUT/
      dataset.json          what was built: generator, classes, size, seed, interpreter, filter, summary
      interpreter.pt        the interpreter every sample was labelled with (pinned for resumes and shards)
      images/<id>.png       the generated image        (id = d<seed>-<index>, latent from that stream)
      masks/<id>.png        its majority-vote mask: 8-bit palette PNG, pixel value = class id
      labels.txt            class names, line i = class id i
      manifest.csv          id, latent seed and index, image score, uncertainty rank, kept (0 = filtered out)
      train.txt             the training list: ids of the kept samples
      contact_sheet.png     kept samples and the most uncertain rejected ones, with mask overlays
      parts/chunk_NNNNN.json  per-chunk records (scores), written after the chunk's PNGs
      keypoints.json        with [keypoints] names only: every sample's predicted keypoints in the COCO
                            keypoint format (``coco_keypoints``: ids, visibility, bbox rule), kept 0/1 per image

Keypoints (a workspace with ``[keypoints] names``): the interpreter has one heatmap head per name; each chunk
row records the sample's peaks [x, y, confidence] per name (2 and 4 decimals, so that resumes, shards and
ranks write the same bytes) and its object box, and dataset.json records names, skeleton and threshold (a
resume or shard with other ones is refused). Images, masks and keypoints share one pixel frame: the
generator's label geometry (``[generator] label_resolution`` and crop are applied to the image before it is
written, and the interpreter labels at that geometry). Without names nothing of this is written.

Latents: sample i of seed S is z ~ N(0, I) from ``default_rng([DATASET_STREAM, S, i])`` — a stream of its
own, never a pool latent (pools use ``[seed, i]``), and a larger ``--size`` extends a smaller one.

Work is cut in fixed chunks of ``CHUNK`` samples; a chunk's record is written (atomically) only after all
its PNGs are, so an interrupted run redoes at most the chunks in flight, and since a chunk is always
computed the same way, a resumed run ends byte-identical to an uninterrupted one. ``--shard i/n`` owns
the chunks c with c % n == i (disjoint, complete); shards may run at once, on one shared folder or
separate copies merged later. The filter needs every score, so it runs in ``merge_dataset`` once all
chunks exist: an unsharded run merges at the end by itself; after shards, ``build-dataset --merge OUT``.
"""

from __future__ import annotations

import csv
import io
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dgan_al import distributed
from dgan_al.errors import UserError, quote
from dgan_al.generators.photos import photo_key
from dgan_al.files import atomic_copy, atomic_write_bytes, atomic_write_json, atomic_write_text, is_temp_file, sha256_file
from dgan_al.device import resolve_device
from dgan_al.interpreter import PixelEnsemble
from dgan_al.progress import ProgressCallback, silent
from dgan_al.report import contact_sheet, overlay, save_mask_png
from dgan_al.workflows.coco_keypoints import BBOX_RULE, COORDINATES, coco_keypoints, keypoint_rows, object_box
from dgan_al.workflows.interpreter import INTERPRETER_FILE, round_interpreter, train_on_annotations
from dgan_al.workflows.status import workspace_status
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace
from dgan_al.workspace.lock import WorkspaceLock

DATASET_FORMAT = "dgan-al dataset"
DATASET_VERSION = 1
DATASET_STREAM = 0x64617461  # "data": the first entropy word of every dataset latent
CHUNK = 64
SETTINGS_FILE = "dataset.json"
KEYPOINTS_FILE = "keypoints.json"


def dataset_latents(z_dim: int, seed: int, start: int, n: int) -> torch.Tensor:
    """Samples ``start .. start+n-1`` of the dataset stream ``seed``: float32 [n, z_dim]."""
    out = np.empty((n, z_dim), dtype=np.float32)
    for row, index in enumerate(range(start, start + n)):
        out[row] = np.random.default_rng([DATASET_STREAM, seed, index]).standard_normal(z_dim, dtype=np.float32)
    return torch.from_numpy(out)


def sample_id(seed: int, index: int) -> str:
    return f"d{seed}-{index:07d}"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """"i/n" -> (i, n) with 0 <= i < n; None stays None."""
    if text is None:
        return None
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise UserError(f"must be i/n with 0 <= i < n (e.g. 0/4), got {quote(text)}", setting="shard",
                        fix="shards are numbered from 0: 0/4 ... 3/4")
    return i, n


@dataclass
class MergeResult:
    size: int
    kept: int
    rejected: int
    filter: float
    threshold: float  # the lowest score that was filtered out (inf if none)
    score_quantiles: dict = field(default_factory=dict)
    class_share: dict = field(default_factory=dict)  # class -> share of pixels among kept masks
    files: dict = field(default_factory=dict)
    keypoint_share: dict | None = None  # keypoint name -> share of samples where it is labelled (v 2); None: no keypoints


@dataclass
class BuildResult:
    out: Path
    shard: tuple[int, int] | None
    interpreter_source: str  # where the interpreter came from, in words
    trained: bool
    chunks_total: int = 0
    chunks_computed: int = 0
    chunks_reused: int = 0
    samples_computed: int = 0
    seconds: float = 0.0
    merge: MergeResult | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def samples_per_s(self) -> float:
        return self.samples_computed / self.seconds if self.seconds > 0 else 0.0


def build_dataset(ws: Workspace, out: Path, size: int, seed: int = 1, filter_fraction: float = 0.10,
                  device: str | None = None, shard: tuple[int, int] | None = None, workers: int = 4,
                  chunk: int = CHUNK, progress: ProgressCallback = silent, images: Path | None = None) -> BuildResult:
    """Generate ``size`` samples (or a shard of them) into ``out``; merge (filter) when all are there.

    A photo pool's workspace labels photos instead: the first ``size`` (by name) of the pool folder, or of
    ``images``; a sample is then the photo at the label resolution (id = its pool id)."""
    out = Path(out).resolve()
    if size < 1:
        raise UserError(f"must be at least 1, got {size}", setting="size", fix="e.g. 10000")
    if chunk < 1:
        raise UserError(f"must be at least 1, got {chunk}", setting="chunk", fix="e.g. 64")
    _check_filter(filter_fraction)
    if ws.annotations_dir.resolve() in (out, *out.parents) or out == ws.rounds_dir.resolve():
        raise UserError(f"would write into the workspace's own {out.name}/", path=out, setting="out",
                        fix="choose another folder, e.g. data/")
    if out.exists() and not out.is_dir():
        raise UserError("a file, not a folder", path=out, setting="out", fix="choose a folder name")
    _check_ours(out)
    out.mkdir(parents=True, exist_ok=True)
    i, n = distributed.rank_shard(shard) or (0, 1)  # under torchrun: this rank's part
    lock_name = f".build-{i}-of-{n}.lock"
    # the workspace is read (shared with other builds, never while next-round writes it), the shard is ours
    with WorkspaceLock(ws.root, f"build-dataset {i}/{n}", shared=True, clean=[ws.cache_dir]), \
            WorkspaceLock(out, f"build-dataset {i}/{n}", name=lock_name, clean=[out],
                          what="this dataset folder"):
        _check_ours(out)
        return _build_locked(ws, out, size, seed, filter_fraction, device, shard, workers, chunk, progress, images)


def _check_ours(out: Path) -> None:
    """Refuse an ``out`` folder that holds anything but a dataset (or the start of one: locks, temp files,
    the pinned interpreter written before dataset.json)."""
    if not out.is_dir() or (out / SETTINGS_FILE).is_file():
        return
    foreign = [p.name for p in out.iterdir() if not (p.name == INTERPRETER_FILE or is_temp_file(p)
                                                     or (p.name.startswith(".build-") and p.name.endswith(".lock")))]
    if foreign:
        raise UserError(f"a non-empty folder that is not a dgan-al dataset (it holds {foreign[0]})", path=out,
                        setting="out",
                        fix="choose a new or empty folder (nothing there was touched)")


def _build_locked(ws, out: Path, size: int, seed: int, filter_fraction: float, device, shard, workers, chunk,
                  progress, images: Path | None = None) -> BuildResult:
    cfg = ws.config
    device = distributed.rank_device(resolve_device(device or cfg.run.device))
    generator = ws.load_generator(device=str(device))
    photos = _photo_samples(ws, generator, images) if cfg.photo_pool else None
    if photos is not None:
        size = min(size, len(photos[1]))
    store = AnnotationStore(ws.annotations_dir)
    ensemble, source, trained = distributed.rank0_first(  # under torchrun rank 0 pins it, the others load it
        lambda: _interpreter(ws, store, out, generator, device, progress))
    _check_heads(ws, out, ensemble)
    interpreter_sha = sha256_file(out / INTERPRETER_FILE)
    names = list(cfg.keypoints.names)
    keypoints = {"names": names, "skeleton": [list(pair) for pair in cfg.keypoints.skeleton],
                 "prefill_confidence": float(cfg.keypoints.prefill_confidence)} if names else None
    settings = _settings(out, generator, cfg.classes, size, seed, interpreter_sha, cfg.selection.score,
                         ws.generator_spec(), chunk, keypoints, photos and _photo_settings(*photos))
    result = BuildResult(out, shard, source, trained)
    if settings.get("annotation_set", store.set_hash()) != store.set_hash():
        result.messages.append("the annotations changed since this dataset was started: it goes on with the "
                               "interpreter it started with (use a new --out for one trained on them)")
    waiting = sum(r.done - r.imported for r in workspace_status(ws).rounds)
    if waiting and not (out / SETTINGS_FILE).is_file():  # a new dataset
        result.messages.append(f"{waiting} finished annotation file(s) in the round folders are not imported yet: "
                               f"this dataset uses the {len(store.records)} imported ones (run `dgan-al next-round` "
                               "first to include them)")
    settings.setdefault("annotation_set", store.set_hash())
    settings.setdefault("n_annotations", len(store.records))
    atomic_write_json(out / SETTINGS_FILE, settings)
    (out / "images").mkdir(exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    (out / "parts").mkdir(exist_ok=True)

    n_chunks = (size + chunk - 1) // chunk
    i, n = distributed.rank_shard(shard) or (0, 1)
    mine = [c for c in range(n_chunks) if c % n == i]
    result.chunks_total = len(mine)
    key = _chunk_key(settings)
    todo = [c for c in mine if _read_chunk(out, c, key, _chunk_rows(c, size, chunk), len(names)) is None]
    result.chunks_reused = len(mine) - len(todo)
    whole = shard or (0, 1)  # what the progress counts: under torchrun every rank's chunks
    tally = distributed.Tally(progress, "generating samples",
                              sum(_chunk_rows(c, size, chunk) for c in range(n_chunks) if c % whole[1] == whole[0]))
    tally.add(sum(_chunk_rows(c, size, chunk) for c in mine) - sum(_chunk_rows(c, size, chunk) for c in todo))
    t0 = time.perf_counter()
    batch = cfg.run.batch
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="png") as pool:
        pending: tuple[int, list[dict], list[Future]] | None = None
        for c in todo:
            start, rows_n = c * chunk, _chunk_rows(c, size, chunk)
            z = dataset_latents(generator.z_dim, seed, start, rows_n) if photos is None else \
                torch.stack([photo_key(e.sha256) for e in photos[1].entries[start:start + rows_n]])
            rows, futures = [], []
            for s in range(0, rows_n, batch):
                zb = z[s:s + batch]
                synthesis = generator.synthesize(zb)
                with torch.no_grad():
                    pred = ensemble.predict(synthesis.features)
                images = synthesis.images.numpy()
                labels = pred.labels.numpy()
                if images.shape[1:3] != labels.shape[1:]:  # one pixel frame for images, masks and keypoints
                    raise RuntimeError(f"image {images.shape[1:3]} and label {labels.shape[1:]} sizes differ")
                for j in range(len(zb)):
                    index = start + s + j
                    id = sample_id(seed, index) if photos is None else photos[1].entries[index].pool_id
                    rows.append({"id": id, "index": index, "score_sum": float(pred.image_score[j]),
                                 "score_top10": float(pred.image_score_top10[j])})
                    if photos is not None:
                        rows[-1]["photo"] = photos[1].entries[index].name
                    if names:
                        bbox, area = object_box(labels[j])
                        rows[-1] |= {"keypoints": keypoint_rows(pred.keypoints.positions[j], pred.keypoints.confidence[j],
                                                                labels.shape[2], labels.shape[1]),
                                     "bbox": bbox, "area": area}
                    futures.append(pool.submit(_write_pair, out, id, images[j].copy(), labels[j].copy()))
                tally.add(len(zb))
            if pending is not None:  # the previous chunk's PNGs were encoded while this one was computed
                _finish_chunk(out, key, *pending)
            pending = (c, rows, futures)
            result.chunks_computed += 1
            result.samples_computed += rows_n
        if pending is not None:
            _finish_chunk(out, key, *pending)
    result.seconds = time.perf_counter() - t0

    # under torchrun rank 0 alone merges, once every rank's chunks are there, and reports the job's counts
    counts = distributed.wait_for_all(tally.tick, (result.chunks_computed, result.chunks_reused, result.samples_computed))
    if distributed.rank() > 0:
        return result
    result.chunks_computed, result.chunks_reused, result.samples_computed = (sum(c) for c in zip(*counts))
    result.chunks_total = result.chunks_computed + result.chunks_reused
    result.seconds = time.perf_counter() - t0
    if shard is None or all(_read_chunk(out, c, key, _chunk_rows(c, size, chunk), len(names)) is not None
                            for c in range(n_chunks)):
        result.merge = merge_dataset(out, filter_fraction, progress=progress)
    return result


def _check_filter(filter_fraction: float) -> None:
    if not 0.0 <= filter_fraction < 1.0:
        raise UserError(f"must be a fraction in [0, 1), got {filter_fraction}", setting="filter_fraction",
                        fix="e.g. 0.10 drops the 10% most uncertain samples")


def _interpreter(ws: Workspace, store: AnnotationStore, out: Path, generator, device, progress):
    """The dataset's pinned interpreter; else the round's one trained on these annotations; else train."""
    cfg = ws.config
    weights = out / INTERPRETER_FILE
    if weights.is_file():
        ensemble = PixelEnsemble.load(weights, expect_generator=generator.identity, expect_classes=cfg.classes,
                                      device=device)
        return ensemble, "the one this dataset was started with", False
    if not store.records:
        raise UserError("no annotations yet: the interpreter needs at least one", path=ws.annotations_dir,
                        fix="run the annotation loop first (dgan-al next-round, annotate, next-round)")
    found = round_interpreter(ws, store.set_hash())
    if found is not None:
        number, path = found
        ensemble = PixelEnsemble.load(path, expect_generator=generator.identity, expect_classes=cfg.classes,
                                      device=device)
        # with [keypoints] names, a round trained before they were set (or changed) lacks these heads: train
        if not cfg.keypoints.names or ensemble.keypoints == list(cfg.keypoints.names):
            atomic_copy(path, weights)
            return ensemble, f"round {number:03d}'s (trained on these {len(store.records)} annotations)", False
    why = "no round was trained on exactly them" if found is None else f"round {found[0]:03d}'s has other keypoint heads"
    ensemble = train_on_annotations(ws, store, store.ids(), generator, device, progress)
    ensemble.save(weights)
    return ensemble, f"trained now on all {len(store.records)} annotations ({why})", True


def _check_heads(ws: Workspace, out: Path, ensemble: PixelEnsemble) -> None:
    """With [keypoints] names the dataset's interpreter must have exactly these heads."""
    names = list(ws.config.keypoints.names)
    if names and ensemble.keypoints != names:
        has = f"the keypoint heads {_short(ensemble.keypoints)}" if ensemble.keypoints else "no keypoint heads"
        raise UserError(f"this dataset's interpreter has {has}, the workspace's [keypoints] names are {_short(names)}",
                        path=out / INTERPRETER_FILE,
                        fix=f"set [keypoints] names in {ws.config_path.name} back, or build into a new folder")


def _settings(out: Path, generator, classes, size: int, seed: int, interpreter_sha: str, score: str,
              spec: str, chunk: int, keypoints: dict | None = None, photos: dict | None = None) -> dict:
    """dataset.json: the settings a resume or another shard must share; refuses a mismatch."""
    path = out / SETTINGS_FILE
    wanted = {"format": DATASET_FORMAT, "version": DATASET_VERSION, "generator": generator.identity,
              "generator_spec": spec, "classes": list(classes), "seed": seed, "chunk": chunk,
              "interpreter_sha256": interpreter_sha, "score": score,
              "resolution": list(generator.geometry.size)}
    if keypoints is not None:  # a keypoint workspace only: a parts-only dataset.json stays as it was
        wanted["keypoints"] = keypoints
    if photos is not None:  # a photo pool only: the folder labelled and its contents
        wanted["photos"] = photos
    if not path.is_file():
        return wanted | {"size": size}
    try:
        found = json.loads(path.read_text())
    except ValueError as error:
        raise UserError(f"dataset.json is not valid JSON ({error})", path=path,
                        fix="restore it, or build into a new folder") from None
    for name, value in (wanted | {"keypoints": keypoints, "photos": photos}).items():
        if found.get(name) != value:
            what = {"seed": f"seed {found.get(name)}",
                    "keypoints": "the [keypoints] names, skeleton and prefill_confidence it was built with",
                    "photos": "the folder of photos it was built from, unchanged"}.get(name, f"its {name}")
            raise UserError(f"this folder holds a dataset built with another {name} "
                            f"({_short(found.get(name))} here, {_short(value)} now)", path=path,
                            fix=f"rerun with {what}, or build into a new folder")
    if size < int(found.get("size", 0)):
        raise UserError(f"this dataset already has {found['size']} samples; it can grow, not shrink", path=path,
                        setting="size", fix=f"rerun with {found['size']} or more, or build into a new folder")
    found["size"] = size
    return found


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _chunk_key(settings: dict) -> str:
    key = f"{settings['interpreter_sha256'][:16]}|{settings['generator']}|{settings['seed']}|{settings['chunk']}"
    return key + (f"|{settings['photos']['digest']}" if "photos" in settings else "")


def _photo_samples(ws: Workspace, generator, images: Path | None) -> tuple[Path, object]:
    """The folder a photo workspace's dataset labels (the pool's, or ``images``) and its scan."""
    from dgan_al.workspace.image_pool import scan_pool

    if images is None:
        return generator.folders[0]
    folder = Path(images).resolve()
    if not folder.is_dir():
        raise UserError("no such folder of photos", path=folder, setting="images", fix="give a folder of images")
    index = scan_pool(folder)
    if not len(index):
        raise UserError("the folder holds no images (.png .jpg .jpeg .webp .bmp)", path=folder, setting="images",
                        fix="give a folder of images")
    generator.add_folder(folder, index)
    return folder, index


def _photo_settings(folder: Path, index) -> dict:
    """dataset.json's "photos": the folder, its photo count and a digest of their names and bytes."""
    return {"folder": str(folder), "count": len(index), "digest": index.digest()}


def _chunk_rows(c: int, size: int, chunk: int) -> int:
    return min(chunk, size - c * chunk)


def _chunk_path(out: Path, c: int) -> Path:
    return out / "parts" / f"chunk_{c:05d}.json"


def _read_chunk(out: Path, c: int, key: str, rows: int, n_keypoints: int = 0) -> list[dict] | None:
    """The chunk's records if the chunk is complete (record valid, ``n_keypoints`` recorded per row and every
    PNG present), else None."""
    try:
        record = json.loads(_chunk_path(out, c).read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != key or len(record.get("rows", [])) != rows:
        return None
    for row in record["rows"]:
        if n_keypoints and len(row.get("keypoints") or ()) != n_keypoints:
            return None
        if not (out / "images" / f"{row['id']}.png").is_file() or not (out / "masks" / f"{row['id']}.png").is_file():
            return None
    return record["rows"]


def _write_pair(out: Path, id: str, image: np.ndarray, mask: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    atomic_write_bytes(out / "images" / f"{id}.png", buf.getvalue())
    save_mask_png(out / "masks" / f"{id}.png", mask)


def _finish_chunk(out: Path, key: str, c: int, rows: list[dict], futures: list[Future]) -> None:
    for future in futures:
        future.result()  # re-raises an encoding / disk error here
    atomic_write_json(_chunk_path(out, c), {"key": key, "chunk": c, "rows": rows})


def merge_dataset(out: Path, filter_fraction: float | None = None, progress: ProgressCallback = silent) -> MergeResult:
    """Apply the global filter over every chunk: manifest.csv, train.txt, labels.txt, contact sheet."""
    out = Path(out).resolve()
    path = out / SETTINGS_FILE
    if not path.is_file():
        raise UserError("not a dgan-al dataset folder (no dataset.json)", path=out,
                        fix="give the --out folder of build-dataset")
    try:
        settings = json.loads(path.read_text())
    except ValueError as error:
        raise UserError(f"dataset.json is not valid JSON ({error})", path=path, fix="restore it") from None
    if filter_fraction is None:
        filter_fraction = float(settings.get("merged", {}).get("filter", 0.10))
    _check_filter(filter_fraction)
    size, chunk, key = int(settings["size"]), int(settings["chunk"]), _chunk_key(settings)
    keypoints = settings.get("keypoints")
    n_keypoints = len(keypoints["names"]) if keypoints else 0
    n_chunks = (size + chunk - 1) // chunk
    rows, missing = [], []
    for c in range(n_chunks):
        part = _read_chunk(out, c, key, _chunk_rows(c, size, chunk), n_keypoints)
        if part is None:
            missing.append(c)
        else:
            rows.extend(part)
        progress("merging", c + 1, n_chunks)
    if missing:
        listed = ", ".join(f"{c} (samples {c * chunk}-{c * chunk + _chunk_rows(c, size, chunk) - 1})" for c in missing[:6])
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        raise UserError(f"{len(missing)} of {n_chunks} chunks are not finished: {listed}{more}", path=out,
                        fix="run the shards that own them (chunk c belongs to shard c % n), "
                            "or build-dataset without --shard, then --merge again")
    scores = np.array([r["score_sum" if settings.get("score", "sum") == "sum" else "score_top10"] for r in rows])
    order = np.lexsort((np.arange(len(rows)), -scores))  # most uncertain first, ties by index
    n_drop = int(round(filter_fraction * len(rows)))
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(1, len(rows) + 1)
    kept = rank > n_drop
    classes = settings["classes"]

    lines = io.StringIO()
    writer = csv.writer(lines, lineterminator="\n")
    photos = "photos" in settings  # a photo's row names the photo instead of a latent
    writer.writerow(["id", *(("photo", "photo_index") if photos else ("latent_seed", "latent_index")), "score", "rank",
                     "kept", "image", "mask"])
    for row, score, r, k in zip(rows, scores, rank, kept):
        writer.writerow([row["id"], row["photo"] if photos else settings["seed"], row["index"], repr(float(score)),
                         int(r), int(k), f"images/{row['id']}.png", f"masks/{row['id']}.png"])
    atomic_write_text(out / "manifest.csv", lines.getvalue())
    atomic_write_text(out / "train.txt", "".join(f"{row['id']}\n" for row, k in zip(rows, kept) if k))
    atomic_write_text(out / "labels.txt", "".join(f"{c}\n" for c in classes))
    files = {"manifest": str(out / "manifest.csv"), "train_list": str(out / "train.txt"),
             "contact_sheet": str(out / "contact_sheet.png")}
    labelled = None
    if keypoints:
        document = _keypoints_document(settings, rows, kept)
        atomic_write_text(out / KEYPOINTS_FILE, json.dumps(document, separators=(",", ":")) + "\n")
        files["keypoints"] = str(out / KEYPOINTS_FILE)
        labelled = {name: sum(a["keypoints"][3 * k + 2] > 0 for a in document["annotations"]) / len(rows)
                    for k, name in enumerate(keypoints["names"])}
    share = _class_share(out, [row["id"] for row, k in zip(rows, kept) if k][:200], len(classes))
    _contact_sheet(out, rows, kept, order, scores, classes)
    q = np.quantile(scores, [0.0, 0.5, 0.9, 1.0])
    result = MergeResult(size=len(rows), kept=int(kept.sum()), rejected=int((~kept).sum()), filter=filter_fraction,
                         threshold=float(scores[order[n_drop - 1]]) if n_drop else float("inf"),
                         score_quantiles={k: float(v) for k, v in zip(("min", "median", "p90", "max"), q)},
                         class_share={c: float(s) for c, s in zip(classes, share)}, files=files,
                         keypoint_share=labelled)
    settings["merged"] = {"filter": filter_fraction, "kept": result.kept, "rejected": result.rejected,
                          "threshold": None if n_drop == 0 else result.threshold,
                          "score_quantiles": result.score_quantiles}
    atomic_write_json(path, settings)
    return result


def _keypoints_document(settings: dict, rows: list[dict], kept: np.ndarray) -> dict:
    """keypoints.json (``coco_keypoints``) from the dataset's settings and its chunk rows in manifest order."""
    keypoints = settings["keypoints"]
    height, width = settings["resolution"]
    info = {"description": "dgan-al build-dataset: generated images, keypoints predicted by the interpreter's "
                           "heatmap heads", "contributor": "dgan-al", "version": f"{DATASET_FORMAT} {DATASET_VERSION}",
            "generator": settings["generator"], "generator_spec": settings["generator_spec"],
            "latent_seed": settings["seed"], "interpreter_sha256": settings["interpreter_sha256"],
            "coordinates": COORDINATES, "image_id": "the sample's latent index (manifest.csv latent_index)",
            "annotation_id": "image_id + 1",
            "visibility": f"2 where the predicted confidence is at least {keypoints['prefill_confidence']} "
                          "([keypoints] prefill_confidence), else 0 with x = y = 0",
            "prefill_confidence": keypoints["prefill_confidence"], "bbox": BBOX_RULE}
    return coco_keypoints(rows, kept.tolist(), names=keypoints["names"], skeleton=keypoints["skeleton"],
                          threshold=keypoints["prefill_confidence"], width=int(width), height=int(height), info=info)


def _class_share(out: Path, ids: list[str], n_classes: int) -> np.ndarray:
    """Share of pixels per class over (up to 200 of) the kept masks."""
    counts = np.zeros(n_classes, dtype=np.int64)
    for id in ids:
        counts += np.bincount(np.asarray(Image.open(out / "masks" / f"{id}.png")).reshape(-1), minlength=n_classes)[:n_classes]
    return counts / max(1, counts.sum())


def _contact_sheet(out: Path, rows: list[dict], kept: np.ndarray, order: np.ndarray, scores: np.ndarray,
                   classes: list[str]) -> None:
    """Three rows of kept samples and one of the most uncertain rejected ones, image + overlay each."""
    def panels(index: int) -> list[np.ndarray]:
        id = rows[index]["id"]
        image = np.asarray(Image.open(out / "images" / f"{id}.png").convert("RGB"))
        mask = np.asarray(Image.open(out / "masks" / f"{id}.png"))
        if image.shape[0] > 160:  # keep the sheet a sensible size for large generators
            step = int(np.ceil(image.shape[0] / 128))
            image, mask = image[::step, ::step], mask[::step, ::step]
        return [image, overlay(image, mask)]

    kept_idx = [i for i in range(len(rows)) if kept[i]][:12]
    rejected_idx = [int(i) for i in order if not kept[i]][:4]
    sheet_rows, captions = [], []
    for start in range(0, len(kept_idx), 4):
        group = kept_idx[start:start + 4]
        sheet_rows.append([p for i in group for p in panels(i)])
        captions.append("kept: " + "  ".join(f"{rows[i]['id']} (JS {scores[i]:.3g})" for i in group))
    if rejected_idx:
        sheet_rows.append([p for i in rejected_idx for p in panels(i)])
        captions.append("filtered out (most uncertain): " + "  ".join(f"{rows[i]['id']} ({scores[i]:.3g})"
                                                                      for i in rejected_idx))
    contact_sheet(sheet_rows, captions, out / "contact_sheet.png", title=f"generated dataset: {int(kept.sum())} "
                  f"kept, {int((~kept).sum())} filtered out as most uncertain", legend=classes)

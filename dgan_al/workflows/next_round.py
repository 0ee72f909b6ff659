"""``next_round``: import -> train -> score the pool -> uncertainty band + k-center coreset -> export.

Every stage leaves its result in the round folder, so an interrupted run (Ctrl-C, kill -9) resumes
where it stopped: the interpreter is reused when it was trained on the same annotation set, pool scores
are written in chunks (atomically) and only missing chunks are computed, and the selection is a
deterministic function of the scores. The resumed run ends with exactly the result of an uninterrupted
one.
"""

from __future__ import annotations

import io
import shutil
import time
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from dgan_al import distributed
from dgan_al.errors import UserError
from dgan_al.generators.photos import origin_key
from dgan_al.files import atomic_write_bytes, sha256_file
from dgan_al.device import resolve_device
from dgan_al.geometry import LabelGeometry
from dgan_al.interpreter import PixelEnsemble
from dgan_al.interpreter.grid import class_js, on_grid
from dgan_al.progress import ProgressCallback, silent
from dgan_al.strategies import choose, exported, image_ranks, needs, round_strategy
from dgan_al.workflows.embedding import annotated_embeddings, w_embedding
from dgan_al.workflows.export import ExportItem, export_round, prefill_allowed, read_selection
from dgan_al.workflows.features import cache_bytes, cached_features
from dgan_al.workflows.importing import ImportReport, import_annotations
from dgan_al.workflows.interpreter import INTERPRETER_FILE, annotation_latents, new_ensemble, training_items
from dgan_al.workflows.pool import Pool, keep_originals, workspace_pool
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace, parse_latent_id
from dgan_al.workspace.lock import WorkspaceLock
from dgan_al.workspace.rounds import read_round_state, write_round_state

# The image score on a CPU when score_pixels = "auto": the centre pixel of every 4x4 cell (1024 of 16384 on
# toy-faces). It keeps the full score's ranking (Spearman >= 0.95) and its selection band (>= 80% shared)
# at a fraction of the cost; grid:8 does not. On a GPU: every pixel. Measurements: docs/experiments.md.
CPU_SCORE_PIXELS = "grid:4"


@dataclass
class RoundOverrides:
    """Command-line overrides of ``dgan-al.toml`` for one run (None = use the config)."""

    pool_size: int | None = None
    skip_top: float | None = None
    band: float | None = None
    centers: int | None = None
    device: str | None = None
    seed: int | None = None
    prefill: bool | None = None
    score_pixels: str | None = None
    embedding: str | None = None

    def apply(self, ws: Workspace) -> None:
        c = ws.config
        if self.pool_size is not None and c.photo_pool:
            raise UserError("a photo pool is every photo in its folder; it has no size to set", setting="pool_size",
                            fix="add or remove photos in the folder instead")
        for name, target in (("pool_size", (c.pool, "size")), ("skip_top", (c.selection, "skip_top")),
                             ("band", (c.selection, "band")), ("centers", (c.selection, "centers")),
                             ("device", (c.run, "device")), ("seed", (c.ensemble, "seed")),
                             ("prefill", (c.run, "prefill")), ("score_pixels", (c.selection, "score_pixels")),
                             ("embedding", (c.selection, "embedding"))):
            value = getattr(self, name)
            if value is not None:
                setattr(target[0], target[1], value)
        c.selection.annotate = min(c.selection.annotate, c.selection.centers)
        c.validate(ws.config_path)


@dataclass
class NextRoundResult:
    status: str  # "exported" or "up-to-date"
    imports: ImportReport
    round: int | None = None
    folder: Path | None = None
    chosen: list[dict] = field(default_factory=list)
    class_totals: dict = field(default_factory=dict)  # class -> (images, pixels)
    quantiles: dict = field(default_factory=dict)  # pool score quantiles
    times: dict = field(default_factory=dict)  # stage -> seconds
    chunks_computed: int = 0
    chunks_reused: int = 0
    interpreter_reused: bool = False
    cache_mb_per_image: float = 0.0
    n_annotations: int = 0
    prefill_note: str = ""  # whether the exported files are pre-filled, and why
    message: str = ""
    pool_changes: str = ""  # a photo pool: files added, removed, changed or renamed since the last round


def next_round(ws: Workspace, overrides: RoundOverrides | None = None,
               progress: ProgressCallback = silent) -> NextRoundResult:
    (overrides or RoundOverrides()).apply(ws)
    if distributed.rank() > 0:  # under torchrun rank 0 holds the lock; the others only read what it wrote
        return _score_for_rank0(ws, progress)
    with WorkspaceLock(ws.root, "next-round", clean=[ws.annotations_dir, ws.rounds_dir]):
        return _next_round_locked(ws, progress)


def _next_round_locked(ws: Workspace, progress: ProgressCallback) -> NextRoundResult:
    cfg = ws.config
    for number in ws.rounds():  # a damaged state file is refused before anything changes
        read_round_state(ws.round_dir(number))
    store = AnnotationStore(ws.annotations_dir)
    imports = import_annotations(ws, store)
    annotation_set = store.set_hash()
    result = NextRoundResult(status="exported", imports=imports, n_annotations=len(store.records),
                             class_totals=store.class_totals(cfg.classes))
    if not store.records:
        first = ws.latest_round()
        where = f"rounds/round_{first:03d}" if first is not None else "a round folder"
        raise UserError(f"no finished annotations yet: annotate the image(s) in {where} and tick 'done'",
                        path=ws.annotations_dir, fix="run `dgan-al annotate`, then `dgan-al next-round` again")

    latest = ws.latest_round()
    if store.records:  # annotations may come from rounds no longer on disk (e.g. a fresh clone's seed set)
        latest = max(latest if latest is not None else -1, max(r.round for r in store.records.values()))
    state = read_round_state(ws.round_dir(latest)) if latest is not None else {}
    if latest is not None and state.get("stage") == "complete" and state.get("annotation_set") == annotation_set \
            and not imports.changed:
        result.status, result.round, result.folder = "up-to-date", latest, ws.round_dir(latest)
        result.message = (f"nothing new to import and round {latest:03d} was trained on exactly these "
                          f"{len(store.records)} annotations: nothing to do")
        return result

    # which round folder: resume an interrupted one on the same annotations, else a new one
    if latest is not None and state.get("stage") != "complete" and latest > 0 and state.get("annotation_set") == annotation_set:
        number = latest
    else:
        number = (latest + 1) if latest is not None else 0
        if latest is not None and state and state.get("stage") != "complete" and latest > 0:
            stale = ws.rounds_dir / f"round_{latest:03d}.stale-{time.strftime('%Y%m%d-%H%M%S')}"
            shutil.move(str(ws.round_dir(latest)), stale)  # an interrupted round on other annotations
            number = latest
    folder = ws.round_dir(number)
    folder.mkdir(parents=True, exist_ok=True)
    result.round, result.folder = number, folder
    state = read_round_state(folder) if state.get("annotation_set") == annotation_set else {}
    state.update({"round": number, "annotation_set": annotation_set, "stage": state.get("stage", "started")})
    write_round_state(folder, state)

    device = distributed.rank_device(resolve_device(cfg.run.device))
    generator = ws.load_generator(device=str(device))
    if ws.config.photo_pool:
        keep_originals(ws, store, generator)
    ids = store.ids()
    latents = annotation_latents(store, ids)

    # --- train ---------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    paths = cached_features(generator, ws.cache_dir, ids, latents, batch=cfg.run.batch, progress=progress)
    result.cache_mb_per_image = cache_bytes(paths) / len(paths) / 2**20
    weights = folder / INTERPRETER_FILE
    ensemble = None
    if weights.is_file() and state.get("interpreter_sha256") == sha256_file(weights):
        ensemble = PixelEnsemble.load(weights, expect_generator=generator.identity, expect_classes=cfg.classes,
                                      device=device)
        result.interpreter_reused = True
    if ensemble is None:
        ensemble = new_ensemble(ws, generator, device)
        ensemble.fit(training_items(ws, store, ids, paths), generator.geometry, progress=progress)
        ensemble.save(weights)
        state.update({"stage": "trained", "interpreter_sha256": sha256_file(weights), "annotations": ids})
        write_round_state(folder, state)
    result.times["train"] = time.perf_counter() - t0

    # --- score the pool --------------------------------------------------------------------------------
    t0 = time.perf_counter()
    pool = workspace_pool(ws, generator)
    if pool.changes is not None and not pool.changes.empty:
        result.pool_changes = pool.changes.summary()
    excluded = _already_used(ws, store, number, pool)
    distributed.share({"folder": str(folder), "interpreter_sha256": state["interpreter_sha256"]})  # ranks > 0
    scores = _score_pool(ws, folder, generator, ensemble, pool, state["interpreter_sha256"], result, progress)
    result.times["score"] = time.perf_counter() - t0

    # --- select ------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    selection, chosen = _select(ws, generator, ensemble, store, ids, paths, pool, scores, excluded)
    result.times["select"] = time.perf_counter() - t0

    # --- export ------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    prefill, prefill_note = prefill_allowed(cfg.run.prefill, len(ids), cfg.run.prefill_min_annotations)
    record = export_round(folder, number, generator, chosen, cfg.classes, ensemble=ensemble, prefill=prefill,
                          keep=cfg.selection.annotate, selection=selection, batch=cfg.run.batch, progress=progress,
                          rule=_rule(cfg.selection, len(ids)), prefill_note=prefill_note, keypoints=cfg.keypoints.names,
                          prefill_confidence=cfg.keypoints.prefill_confidence)
    result.times["export"] = time.perf_counter() - t0
    result.chosen = record["items"]
    result.prefill_note = prefill_note
    result.quantiles = selection["pool"]["score_quantiles"]
    state.update({"stage": "complete", "times": result.times})
    write_round_state(folder, state)
    return result


def _already_used(ws: Workspace, store: AnnotationStore, before_round: int, pool: Pool) -> set[str]:
    """Pool ids never to offer again: annotated, skipped, removed, or exported in an earlier round, also
    where such a latent lies in the pool under another id (the first image, the sample nearest the
    average w, is pool latent s0-... when the pool seed is 0).

    The round being made (or resumed) does not count, so a resumed run chooses what the first did.
    """
    used = set(store.records) | set(store.skipped) | set(store.removed)
    latents = [origin_key(record.latent, record.z) for record in store.records.values()]
    for number in ws.rounds():
        selection = read_selection(ws.round_dir(number)) if number < before_round else None
        if selection:
            items = selection.get("items", [])
            used |= {item["id"] for item in items}
            latents += [origin_key(item.get("latent"), item["z"]) for item in items if "z" in item]
    return used | {pool.ids[i] for i in pool_rows_of(pool.keys, latents)}


def pool_rows_of(pool: torch.Tensor, latents) -> list[int]:
    """The rows of ``pool`` [N, z_dim] equal, bit for bit, to one of ``latents`` (z vectors; others ignored)."""
    keys = {np.asarray(z, dtype=np.float32).tobytes() for z in latents if np.shape(z) == tuple(pool.shape[1:])}
    return [i for i, row in enumerate(pool.numpy()) if row.tobytes() in keys] if keys else []


def _score_for_rank0(ws: Workspace, progress: ProgressCallback) -> NextRoundResult:
    """A rank > 0 under torchrun: wait while rank 0 imports and trains, then score this rank's pool chunks
    with the interpreter rank 0 saved. It writes nothing but those chunk files."""
    result = NextRoundResult(status="scored", imports=ImportReport())
    task = distributed.share(None)
    if task is None:  # rank 0 had nothing to do
        result.status = "up-to-date"
        return result
    cfg = ws.config
    result.folder = Path(task["folder"])
    device = distributed.rank_device(resolve_device(cfg.run.device))
    generator = ws.load_generator(device=str(device))
    ensemble = PixelEnsemble.load(result.folder / INTERPRETER_FILE, expect_generator=generator.identity,
                                  expect_classes=cfg.classes, device=device)
    pool = workspace_pool(ws, generator, save=False)
    _score_pool(ws, result.folder, generator, ensemble, pool, task["interpreter_sha256"], result, progress)
    return result


def _score_pool(ws: Workspace, folder: Path, generator, ensemble: PixelEnsemble, pool: Pool,
                interpreter_sha: str, result: NextRoundResult, progress: ProgressCallback) -> dict[str, np.ndarray]:
    """Score every pool item in resumable chunks: image JS scores, pooled activations and w.

    Under torchrun each rank scores chunk c when c % world_size == rank; rank 0 waits for all and reads
    the others' chunk files (the ranks > 0 return nothing)."""
    cfg = ws.config
    chunk, n = cfg.run.chunk, len(pool)
    pixels = score_pixels(cfg.selection.score_pixels, ensemble.device_)
    with_keypoints = keypoint_score_on(cfg)
    key = f"{interpreter_sha[:16]}|{pool.identity}|{chunk}|{pixels}" + ("|keypoints" if with_keypoints else "")
    out_dir = folder / "scores"
    starts = range(0, n, chunk)
    parts: dict[int, dict[str, np.ndarray]] = {}
    tally = distributed.Tally(progress, "scoring pool", n)
    for c in distributed.my_chunks(len(starts)):
        start = starts[c]
        path = out_dir / f"chunk_{c:05d}.npz"
        stop = min(start + chunk, n)
        part = _read_chunk(path, key, stop - start, with_keypoints)
        if part is not None:
            result.chunks_reused += 1
            tally.add(stop - start)
        else:
            rows = {"score_sum": [], "score_top10": [], "activations": [], "w": []}
            if with_keypoints:
                rows["keypoint_uncertainty"] = []
            for s in range(start, stop, cfg.run.batch):
                z = pool.keys[s:min(s + cfg.run.batch, stop)]
                out = generator.synthesize(z)
                scored = ensemble.score_images(out.features, pixels=pixels, seed=cfg.pool.seed, keypoints=with_keypoints)
                rows["score_sum"].append(scored.image_score.numpy())
                if with_keypoints:
                    rows["keypoint_uncertainty"].append(scored.keypoint_uncertainty.numpy())
                rows["score_top10"].append(scored.image_score_top10.numpy())
                rows["activations"].append(scored.embedding.numpy())
                rows["w"].append(w_embedding(generator, z))
                tally.add(len(z))
            part = {k: np.concatenate(v) for k, v in rows.items()}
            buf = io.BytesIO()
            np.savez(buf, key=np.array(key), **part)
            atomic_write_bytes(path, buf.getvalue())
            result.chunks_computed += 1
        parts[c] = part
    counts = distributed.wait_for_all(tally.tick, (result.chunks_computed, result.chunks_reused))
    if distributed.rank() > 0:
        return {}
    result.chunks_computed, result.chunks_reused = (sum(c) for c in zip(*counts))  # every rank's
    for c, start in enumerate(starts):  # the other ranks' chunks (none when alone)
        if c not in parts:
            parts[c] = _read_chunk(out_dir / f"chunk_{c:05d}.npz", key, min(start + chunk, n) - start, with_keypoints)
            if parts[c] is None:
                raise UserError(f"pool score chunk {c} is missing after every rank finished", path=out_dir,
                                fix="under torchrun the workspace must be on a file system all nodes share")
    return {k: np.concatenate([parts[c][k] for c in range(len(starts))]) for k in parts[0]}


def score_pixels(setting: str, device: torch.device) -> str:
    """Resolve "auto": every pixel on a GPU, ``CPU_SCORE_PIXELS`` on a CPU."""
    if setting != "auto":
        return setting
    return "full" if torch.device(device).type == "cuda" else CPU_SCORE_PIXELS


def keypoint_score_on(cfg) -> bool:
    """Whether keypoint uncertainty enters the image score: ``[keypoints] score`` in a keypoint workspace, and
    always in a keypoint-only one (classes = the background alone), whose JS is 0 everywhere."""
    return bool(cfg.keypoints.names and (cfg.keypoints.score or len(cfg.classes) < 2))


def combined_scores(js_scores: np.ndarray, keypoint_uncertainty: np.ndarray) -> np.ndarray:
    """The image score with ``[keypoints] score``: the mean of the two scores' percentile ranks over the
    candidates, in (0, 1], higher = more uncertain. Ranks, because JS summed over pixels (nats) and the
    keypoints' spread (pixels) have no common unit; each counts the same and neither's scale matters.
    Ties share the mean of their ranks."""
    from scipy.stats import rankdata

    n = len(js_scores)
    return (rankdata(js_scores) + rankdata(keypoint_uncertainty)) / (2.0 * n)


def _read_chunk(path: Path, key: str, expected_rows: int, keypoints: bool = False) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:  # derived data: a chunk that cannot be read whole (truncated, garbled, foreign) is recomputed
        with np.load(path) as data:
            if str(data["key"]) != key:
                return None
            part = {k: data[k] for k in ("score_sum", "score_top10", "activations", "w",
                                         *(("keypoint_uncertainty",) if keypoints else ()))}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        return None
    n = {len(v) for v in part.values()}
    return part if n == {expected_rows} and all(np.isfinite(v).all() for v in part.values()) else None


def _select(ws: Workspace, generator, ensemble: PixelEnsemble, store: AnnotationStore, ids: list[str],
            paths: list[Path], pool: Pool, scores: dict[str, np.ndarray], excluded: set[str]):
    """The configured strategy (``strategies.choose``) on the pool latents not used yet."""
    cfg = ws.config
    s = cfg.selection
    pool_ids = pool.ids
    candidates = np.array([i for i, pid in enumerate(pool_ids) if pid not in excluded], dtype=np.int64)
    if len(candidates) < exported(s.strategy, s.annotate, s.centers, n_annotated=len(ids), switch_at=s.switch_at):
        raise UserError(f"only {len(candidates)} pool images left to choose from ({len(excluded)} used)",
                        path=ws.config_path, fix="add photos to the pool folder" if cfg.photo_pool
                        else "grow the pool: [pool] size")
    image_scores = scores["score_sum" if s.score == "sum" else "score_top10"][candidates]
    if keypoint_score_on(cfg):
        image_scores = combined_scores(image_scores, scores["keypoint_uncertainty"][candidates])
    pixels = score_pixels(s.score_pixels, ensemble.device_)
    wanted = needs(s.strategy)
    seeds = embeddings = cjs = share = None
    if "embeddings" in wanted:
        embeddings = scores[s.embedding][candidates]
        seeds = annotated_embeddings(s.embedding, generator=generator, ensemble=ensemble, latents=annotation_latents(store, ids),
                                     feature_paths=paths, pixels=pixels, seed=cfg.pool.seed)
    if "class_js" in wanted:
        cjs, share = _pool_class_js(generator, ensemble, pool.keys[candidates], pixels, cfg.run.batch)
    rng = np.random.default_rng([cfg.pool.seed, len(ids)])
    try:
        choice = choose(s.strategy, len(candidates), per_round=s.annotate, rng=rng, scores=image_scores,
                        embeddings=embeddings, seed_embeddings=seeds, class_js=cjs, class_share=share,
                        skip_top=s.skip_top, band=s.band, centers=s.centers, rare_power=s.rare_power,
                        n_annotated=len(ids), switch_at=s.switch_at)
    except ValueError as err:
        raise UserError(str(err), path=ws.config_path,
                        fix="widen [selection] band, grow the pool, or lower centers") from None
    ranks = image_ranks(image_scores)
    chosen = []
    for order, b in enumerate(choice.order):
        index = int(candidates[b])
        distance = None if choice.coreset_distances is None else float(choice.coreset_distances[order])
        chosen.append(ExportItem(id=pool_ids[index], z=pool.keys[index], latent=pool.origins[index],
                                 score=float(image_scores[b]), rank=int(ranks[b]),
                                 coreset_order=order if distance is not None else None, coreset_distance=distance))
    q = np.quantile(image_scores, [0.0, 0.1, 0.5, 0.8, 0.9, 1.0])
    selection = {
        "annotation_set": store.set_hash(),
        "annotations": ids,
        "settings": {"strategy": s.strategy, "skip_top": s.skip_top, "band": s.band, "centers": s.centers,
                     "score": s.score, "score_pixels": s.score_pixels, "embedding": s.embedding,
                     **({"switch_at": s.switch_at} if s.strategy == "typical-al" else {}),
                     **({"keypoint_score": "mean rank of the JS score and the keypoint uncertainty"}
                        if keypoint_score_on(cfg) else {})},
        "pool": {**pool.record, "candidates": int(len(candidates)),
                 "excluded": len(pool) - int(len(candidates)),
                 "score_quantiles": {k: float(v) for k, v in zip(("min", "p10", "median", "p80", "p90", "max"), q)}},
        **{k: v for k, v in choice.record.items() if k != "strategy"},
    }
    if "coreset" in selection:
        selection["coreset"]["seeded_with"] = len(ids)
    return selection, chosen


def _rule(s, n_annotated: int) -> str:
    """One line for the round's README: how the images were chosen."""
    strategy = round_strategy(s.strategy, n_annotated, s.switch_at)
    if strategy != s.strategy:
        return _rule(replace(s, strategy=strategy), n_annotated) + \
            f" (typical-al: typical below {s.switch_at} annotated images, al from then on.)"
    if strategy == "typical":
        return (f"Chosen as the most typical image of each of the {s.annotate} largest clusters of the pool "
                f"({s.embedding} embedding) that hold no annotated image (TypiClust).")
    if strategy == "al":
        return (f"Chosen by JS uncertainty (top {s.skip_top:.0%} dropped, band of {s.band:.0%} below) and a "
                f"{s.centers}-centre k-center coreset.")
    return f"Chosen by the {strategy!r} strategy ([selection] strategy; see dgan_al/strategies.py)."


def _pool_class_js(generator, ensemble: PixelEnsemble, z: torch.Tensor, pixels: str, batch: int):
    """JS per predicted class and class shares of pool latents (``rare``): a pass of its own over them."""
    parts = []
    for chunk in z.split(batch):
        features = generator.synthesize(chunk).features
        if pixels == "full":
            p = ensemble.predict(features)
        else:
            grid = on_grid(features, generator.geometry, pixels)
            p = ensemble.predict(grid, geometry=LabelGeometry.full(*grid[0].shape[2:]))
        parts.append(class_js(p.js, p.labels, len(ensemble.classes)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def mean_latent_item(generator) -> ExportItem:
    return ExportItem(id="mean", z=generator.mean_latent(), latent={"mean": True})


__all__ = ["NextRoundResult", "RoundOverrides", "next_round", "mean_latent_item", "parse_latent_id"]

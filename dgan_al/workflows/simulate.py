"""``dgan-al simulate``: the paper's active-learning experiment on toy-faces, with the oracle annotator.

For every repeat (its own seed and pool) and every strategy (``dgan_al/strategies.py``, the same entry
point ``next-round`` uses), a workspace of its own runs the loop: each round the strategy picks pool
images, they are exported to a round folder pre-filled with the current prediction as ``next-round``
exports them, the oracle labels what each image shows (the paper's expert keeping the most realistic
where the strategy has one) and counts its clicks (``labelme/clicks.py``), the files are imported
exactly as a person's, the interpreter is retrained on everything so far, and it is measured on two
fixed held-out sets of GAN samples: validation (to choose settings) and test (to report).

All strategies of a repeat start from the same round-0 model (trained on the first image) and are
measured on the same held-out images, so they are analysed as pairs (``simulate_analysis.py``).
The pool is scored from its feature maps resampled once at the image-score grid (``PoolGrid``). Each
finished (repeat, strategy) run is written to ``OUT/runs/`` at once (curve JSON and held-out confusion
matrices), so an interrupted simulation resumes from the runs it has.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dgan_al.errors import UserError, quote
from dgan_al.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from dgan_al.device import resolve_device
from dgan_al.generators.protocol import sample_latents
from dgan_al.interpreter import PixelEnsemble
from dgan_al.interpreter.ensemble import scoring_pixels
from dgan_al.interpreter.grid import GridScores, PoolGrid, class_js
from dgan_al.metrics import confusion_matrix
from dgan_al.progress import ProgressCallback, silent
from dgan_al.report.simulate_plot import plot_simulation
from dgan_al.strategies import STRATEGIES, choose, needs
from dgan_al.workflows.embedding import annotated_embeddings, w_embedding
from dgan_al.workflows.export import ExportItem, export_round, prefill_allowed
from dgan_al.workflows.features import cached_features
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.init import init_workspace
from dgan_al.workflows.interpreter import annotation_latents, train_on_annotations
from dgan_al.workflows.next_round import pool_rows_of, score_pixels as resolve_score_pixels
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workflows.simulate_analysis import analyse, curve_arrays, table_text
from dgan_al.workflows.simulate_settings import SimulateSettings, upgrade_settings
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.config import render_config
from dgan_al.workspace.layout import Workspace, latent_id

VAL_SEED, TEST_SEED = 4_000, 5_000  # held-out latent streams (pools use the repeat's seed, 0, 1, ...)

__all__ = ["SimulateSettings", "SimulateResult", "simulate", "STRATEGIES"]


@dataclass
class HeldOut:
    """A fixed set of GAN samples with their truth, kept as native feature maps (fp16)."""

    name: str
    maps: list[list[torch.Tensor]]  # per batch: per layer [b, C_l, h_l, w_l] fp16
    truth: np.ndarray  # uint8 [N, P] truth classes at the evaluation pixels


@dataclass
class SimulateResult:
    out: Path
    runs: list[dict] = field(default_factory=list)
    analysis: dict = field(default_factory=dict)  # split -> analyse(...)
    files: dict = field(default_factory=dict)
    reused: int = 0


def simulate(out: Path, settings: SimulateSettings, progress: ProgressCallback = silent) -> SimulateResult:
    settings.check()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings_path = out / "settings.json"
    wanted = settings.as_dict()
    if settings_path.is_file():
        previous = upgrade_settings(json.loads(settings_path.read_text()))
        differ = sorted(k for k in previous.keys() | wanted.keys()
                        if k not in ("strategies", "repeats") and previous.get(k) != wanted.get(k))
        if differ:
            was = ", ".join(f"{k} = {quote(previous.get(k))} there, {quote(wanted.get(k))} now" for k in differ)
            raise UserError(f"this folder holds a simulation with other settings ({was})", path=settings_path,
                            fix="use a new output folder, or the same settings (strategies and repeats may change)")
    atomic_write_json(settings_path, wanted)
    device = resolve_device(settings.device)
    from dgan_al.generators import load_generator

    generator = load_generator("toy-faces", device=str(device))
    pixels = resolve_score_pixels(settings.score_pixels, device)
    result = SimulateResult(out)
    total = settings.repeats * len(settings.strategies) * settings.rounds
    step = 0
    progress("simulating (strategy rounds)", 0, total)
    held = None
    for repeat in range(settings.repeats):
        todo = [s for s in settings.strategies if not _run_path(out, repeat, s).is_file()]
        for strategy in settings.strategies:
            if strategy not in todo:
                result.runs.append(json.loads(_run_path(out, repeat, strategy).read_text()))
                result.reused += 1
                step += settings.rounds
        if not todo:
            continue
        if held is None:
            held = [_held_out(generator, name, seed, n, settings) for name, seed, n in
                    (("val", VAL_SEED, settings.val_size), ("test", TEST_SEED, settings.test_size))]
        base = _base_workspace(out, repeat, settings, generator, device, held, pixels)
        for strategy in todo:
            start = step

            def tick(number: int) -> None:
                progress("simulating (strategy rounds)", start + number, total)

            run, conf = _run_strategy(out, base, repeat, strategy, settings, generator, device, held, pixels, tick)
            step += settings.rounds
            _save_conf(_run_path(out, repeat, strategy).with_suffix(".npz"), conf)
            atomic_write_json(_run_path(out, repeat, strategy), run)
            result.runs.append(run)
            progress("simulating (strategy rounds)", step, total)
    progress("simulating (strategy rounds)", total, total)
    result.analysis = analyse_runs(out, result.runs, settings)
    atomic_write_json(out / "simulate.json", {"settings": wanted, "analysis": result.analysis, "runs": result.runs})
    plot_simulation(result.analysis, out / "simulate.png", settings)
    atomic_write_text(out / "table.txt", table_text(result.analysis["test"], "test") +
                      "\n" + table_text(result.analysis["val"], "validation"))
    result.files = {"results": str(out / "simulate.json"), "plot": str(out / "simulate.png"),
                    "table": str(out / "table.txt")}
    return result


def _run_path(out: Path, repeat: int, strategy: str) -> Path:
    return out / "runs" / f"r{repeat}-{strategy}.json"


def _save_conf(path: Path, conf: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **conf)
    atomic_write_bytes(path, buf.getvalue())


def analyse_runs(out: Path, runs: list[dict], settings: SimulateSettings) -> dict:
    """The paired analysis of the finished runs (repeats where every strategy finished), per split."""
    strategies = list(settings.strategies)
    repeats = sorted({r["repeat"] for r in runs})
    complete = [rep for rep in repeats if all(_run_path(out, rep, s).is_file() for s in strategies)]
    by_key = {(r["repeat"], r["strategy"]): r for r in runs}
    images, clicks = curve_arrays([[by_key[rep, s] for s in strategies] for rep in complete])
    analysis = {}
    for split in ("test", "val"):
        conf = np.stack([np.stack([np.load(_run_path(out, rep, s).with_suffix(".npz"))[split] for s in strategies])
                         for rep in complete])  # [R, S, T, N, K, K]
        classes = list(by_key[complete[0], strategies[0]]["curve"][-1][split]["class_iou"])
        analysis[split] = analyse(conf, images, clicks, strategies, seed=settings.seed, classes=classes)
    analysis["final_class_iou_test"] = {
        s: {c: _nanmean([by_key[rep, s]["curve"][-1]["test"]["class_iou"][c] for rep in complete])
            for c in by_key[complete[0], s]["curve"][-1]["test"]["class_iou"]} for s in strategies}
    return analysis


def _nanmean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


# --- held-out sets and evaluation -------------------------------------------------------------------------

def _held_out(generator, name: str, seed: int, n: int, settings: SimulateSettings) -> HeldOut:
    z = sample_latents(generator.z_dim, n, seed=seed)
    ys, xs = _pixel_index(settings.eval_pixels, generator.geometry.size)
    maps, truth = [], []
    for start in range(0, n, 16):
        zb = z[start:start + 16]
        out = generator.synthesize(zb)
        maps.append([f.to(torch.float16) for f in out.features])
        truth.append(generator.oracle_mask(zb, truth=settings.truth, images=out.images.numpy())[:, ys, xs])
    return HeldOut(name, maps, np.concatenate(truth).reshape(n, -1))


def _pixel_index(pixels: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays selecting the scored pixels of a mask [H, W] in the order score_images returns them."""
    kind, ys, xs = scoring_pixels(pixels, size)
    if kind == "full":
        h, w = size
        return tuple(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))
    if kind == "grid":
        return tuple(np.meshgrid(ys.numpy(), xs.numpy(), indexing="ij"))
    return ys.numpy(), xs.numpy()


def evaluate_on(ensemble: PixelEnsemble, held: HeldOut, pixels: str) -> np.ndarray:
    """Per held-out image, the confusion matrix of the ensemble's votes against the truth: int [N, K, K]."""
    k = len(ensemble.classes)
    conf, row = [], 0
    for maps in held.maps:
        scores = ensemble.score_images([m.float() for m in maps], pixels=pixels)
        for labels in scores.labels.numpy():
            conf.append(confusion_matrix(labels, held.truth[row], k))
            row += 1
    return np.stack(conf).astype(np.int32)


def _summary(conf: np.ndarray, classes: list[str]) -> dict:
    from dgan_al.metrics import iou_per_class, mean_iou

    total = conf.sum(0)
    iou = iou_per_class(total)
    return {"miou": mean_iou(total), "class_iou": {c: (None if np.isnan(v) else float(v)) for c, v in zip(classes, iou)}}


# --- one repeat's shared start ----------------------------------------------------------------------------

def _configure(ws: Workspace, settings: SimulateSettings, repeat: int) -> Workspace:
    cfg = ws.config
    cfg.ensemble.members, cfg.ensemble.epochs = settings.members, settings.epochs
    cfg.ensemble.pixels_per_image, cfg.ensemble.seed = settings.pixels_per_image, settings.seed + repeat
    cfg.selection.skip_top, cfg.selection.band = settings.skip_top, settings.band
    cfg.selection.centers, cfg.selection.annotate = settings.al_centers, settings.per_round
    cfg.selection.embedding, cfg.selection.score_pixels = settings.embedding, settings.score_pixels
    cfg.selection.rare_power, cfg.selection.switch_at = settings.rare_power, settings.switch_at
    cfg.run.device, cfg.run.prefill = settings.device, settings.prefill
    cfg.run.prefill_min_annotations = settings.prefill_min_annotations
    atomic_write_text(ws.config_path, render_config(cfg))
    return Workspace.find(ws.root)


def _base_workspace(out: Path, repeat: int, settings: SimulateSettings, generator, device, held, pixels) -> dict:
    """Round 0 of a repeat: the workspace with the first image annotated, its model, scores and evaluation."""
    folder = out / "work" / f"r{repeat}" / "base"
    ready = folder / "ready.json"
    if not ready.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        init_workspace(folder, "toy-faces", pool_size=settings.pool_size, seed=settings.seed + repeat,
                       device=str(device))
        _share_feature_cache(folder, out / "work" / "cache")
        ws = _configure(Workspace.find(folder), settings, repeat)
        oracle = oracle_annotate(ws, 0, generator=generator, truth=settings.truth)
        store = AnnotationStore(ws.annotations_dir)
        import_annotations(ws, store)
        model = train_on_annotations(ws, store, store.ids(), generator, device)
        model.save(folder / "model0.pt")
        _save_conf(folder / "conf0.npz", {h.name: evaluate_on(model, h, settings.eval_pixels) for h in held})
        atomic_write_json(ready, {"clicks": oracle.clicks, "n_annotations": len(store.records)})
    model = PixelEnsemble.load(folder / "model0.pt", device=device)
    ws = Workspace.find(folder)
    pool = ws.pool_latents(generator.z_dim)
    grid = None
    if any(needs(s) for s in settings.strategies) and pixels != "full":
        grid = PoolGrid((generator.synthesize(c.to(device)).features for c in pool.split(16)), generator.geometry,
                        pixels)
    with np.load(folder / "conf0.npz") as data:
        conf0 = {k: data[k] for k in data.files}
    return {"folder": folder, "model": model, "start": json.loads(ready.read_text()), "conf0": conf0,
            "scores": None, "grid": grid, "pool": pool, "first": _first_image_index(generator, pool)}


def _first_image_index(generator, pool: torch.Tensor) -> int | None:
    """The pool index of the first (already annotated) image, if the pool holds it: never offered again."""
    rows = pool_rows_of(pool, [generator.mean_latent()])
    return rows[0] if rows else None


def _share_feature_cache(workspace: Path, shared: Path) -> None:
    """Point the workspace's feature cache at one folder shared by every run (features depend on z only)."""
    shared.mkdir(parents=True, exist_ok=True)
    cache = workspace / "rounds" / "cache"
    if cache.is_dir() and not cache.is_symlink():
        shutil.rmtree(cache)
    cache.symlink_to(shared.resolve(), target_is_directory=True)


def _score(base: dict, model: PixelEnsemble, generator, pixels: str, device) -> GridScores:
    """The pool's scores by ``model``: from the pool grid, or every pixel (a GPU's "full") from G."""
    if base["grid"] is not None:
        return base["grid"].score(model)
    parts = []
    for chunk in base["pool"].split(16):
        p = model.predict(generator.synthesize(chunk.to(device)).features)
        cjs, share = class_js(p.js, p.labels, len(model.classes))
        parts.append((p.image_score.numpy(), p.embedding.numpy(), cjs, share))
    return GridScores(*(np.concatenate([p[i] for p in parts]) for i in range(4)))


# --- one strategy, all rounds -----------------------------------------------------------------------------

def _run_strategy(out: Path, base: dict, repeat: int, strategy: str, settings: SimulateSettings, generator,
                  device, held, pixels: str, tick) -> tuple[dict, dict[str, np.ndarray]]:
    t0 = time.perf_counter()
    folder = out / "work" / f"r{repeat}" / strategy
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base["folder"], folder, symlinks=True,
                    ignore=shutil.ignore_patterns("model0.pt", "ready.json", "conf0.npz", ".dgan-al.lock"))
    ws = Workspace.find(folder)
    store = AnnotationStore(ws.annotations_dir)
    classes = ws.config.classes
    pool, pool_seed = base["pool"], ws.config.pool.seed
    rng = np.random.default_rng([settings.seed, repeat, STRATEGIES.index(strategy)])
    model = base["model"]
    conf = {h.name: [base["conf0"][h.name]] for h in held}
    start = base["start"]
    curve = [{"round": 0, "n_annotations": start["n_annotations"], "clicks": start["clicks"],
              **{h.name: _summary(base["conf0"][h.name], classes) for h in held}}]
    used = {base["first"]} - {None}
    for number in range(1, settings.rounds + 1):
        candidates = np.array([i for i in range(len(pool)) if i not in used], dtype=np.int64)
        scored = None
        if needs(strategy) - {"embeddings"} or (needs(strategy) and settings.embedding == "activations"):
            if number == 1 and base["scores"] is not None:
                scored = base["scores"]
            else:
                scored = _score(base, model, generator, pixels, device)
                if number == 1:
                    base["scores"] = scored  # round 1 of every strategy uses the round-0 model
        embeddings = seeds = None
        if "embeddings" in needs(strategy):
            ids = store.ids()
            latents = annotation_latents(store, ids)
            embeddings = w_embedding(generator, pool) if settings.embedding == "w" else scored.embeddings
            paths = cached_features(generator, ws.cache_dir, ids, latents) if settings.embedding == "activations" else []
            seeds = annotated_embeddings(settings.embedding, generator=generator, ensemble=model, latents=latents,
                                         feature_paths=paths, pixels=pixels, seed=pool_seed)
            embeddings = embeddings[candidates]
        choice = choose(strategy, len(candidates), per_round=settings.per_round, rng=rng,
                        scores=None if scored is None else scored.scores[candidates], embeddings=embeddings,
                        seed_embeddings=seeds, class_js=None if scored is None else scored.class_js[candidates],
                        class_share=None if scored is None else scored.class_share[candidates],
                        skip_top=settings.skip_top, band=settings.band, centers=settings.al_centers,
                        rare_power=settings.rare_power, n_annotated=len(store.records), switch_at=settings.switch_at)
        chosen = candidates[choice.order]
        used.update(int(i) for i in chosen)
        items = [ExportItem(id=latent_id(pool_seed, int(i)), z=pool[int(i)], latent={"seed": pool_seed, "index": int(i)},
                            score=None if scored is None else float(scored.scores[int(i)])) for i in chosen]
        prefill, note = prefill_allowed(settings.prefill, len(store.records), settings.prefill_min_annotations)
        export_round(ws.round_dir(number), number, generator, items, classes, ensemble=model, prefill=prefill,
                     keep=choice.keep, selection=choice.record, rule=f"simulate: strategy {strategy}", prefill_note=note,
                     keep_prediction=True)
        oracle = oracle_annotate(ws, number, keep=choice.keep,  # None but in the expert's rounds
                                 generator=generator, truth=settings.truth)
        import_annotations(ws, store)
        model = train_on_annotations(ws, store, store.ids(), generator, device)
        point = {"round": number, "n_annotations": len(store.records), "clicks": oracle.clicks}
        for h in held:
            c = evaluate_on(model, h, settings.eval_pixels)
            conf[h.name].append(c)
            point[h.name] = _summary(c, classes)
        curve.append(point)
        tick(number)
    run = {"strategy": strategy, "repeat": repeat, "curve": curve, "seconds": round(time.perf_counter() - t0, 1),
           "annotated": store.ids()}
    return run, {name: np.stack(c) for name, c in conf.items()}

"""``dgan-al simulate``: the paper's active-learning experiment on toy-faces, with the oracle annotator.

For every repeat (its own seed and its own pool) and every strategy, a workspace of its own runs the
loop: each round the strategy picks images from the pool, they are exported to a round folder as
``next-round`` exports them, the oracle writes LabelMe files from the ground truth (the paper's expert,
keeping the most realistic where the strategy has one), the files are imported exactly as a person's
would be, the interpreter ensemble is retrained on everything so far, and it is measured against the
oracle on two fixed held-out sets of GAN samples: validation (to choose settings) and test (to report).

Strategies (K = images annotated per round):
- ``random``: K pool images uniformly at random.
- ``random-expert``: 2K at random; the expert keeps the K most realistic.
- ``uncertainty``: the K with the highest JS image score.
- ``coreset``: k-center greedy over the whole pool (K centres), seeded with the annotated images.
- ``al``: the paper's protocol: drop the top ``skip_top`` by JS, k-center greedy (2K centres) on the
  ``band`` below, the expert keeps K.
The expert judges "most realistic" by the lowest mean squared error between the GAN image and the
renderer's image of the same scene (``workflows/oracle.py``). All strategies of a repeat start from the
same round-0 model (trained on the mean-latent image).

Costs are kept CPU-friendly: image scores use the measured pixel grid (``score_pixels``), and the
held-out sets are scored on a pixel grid too (``eval_pixels``, default the centre of every 2x2 cell: a
quarter of the pixels of every image, an unbiased estimate of the confusion matrix). Each finished
(repeat, strategy) run is written to ``OUT/runs/`` at once, so an interrupted simulation resumes from
the runs it has.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dgan_al.errors import UserError
from dgan_al.files import atomic_write_json, atomic_write_text
from dgan_al.generators import resolve_device
from dgan_al.generators.protocol import sample_latents
from dgan_al.interpreter import PixelEnsemble
from dgan_al.geometry import LabelGeometry
from dgan_al.interpreter.bilinear import interpolation_matrix
from dgan_al.interpreter.ensemble import scoring_pixels
from dgan_al.metrics import confusion_matrix, iou_per_class, mean_iou
from dgan_al.progress import ProgressCallback, silent
from dgan_al.report.figures import pyplot, save_figure
from dgan_al.selection import k_center_greedy, uncertainty_band
from dgan_al.workflows.export import ExportItem, export_round
from dgan_al.workflows.features import cached_features, load_maps
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.init import init_workspace
from dgan_al.workflows.interpreter import annotation_latents, train_on_annotations
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.config import render_config
from dgan_al.workspace.layout import Workspace, latent_id

STRATEGIES = ("random", "random-expert", "uncertainty", "coreset", "al")
EXPERT_STRATEGIES = {"random-expert", "al"}
VAL_SEED, TEST_SEED = 4_000, 5_000  # held-out latent streams (pools use the repeat's seed, 0, 1, ...)


@dataclass
class SimulateSettings:
    strategies: tuple[str, ...] = STRATEGIES
    rounds: int = 4
    per_round: int = 6  # K: images annotated per round
    repeats: int = 3
    pool_size: int = 1000
    val_size: int = 40
    test_size: int = 60
    embedding: str = "activations"  # coreset embedding: "activations" or "w"
    skip_top: float = 0.10
    band: float = 0.10
    centers: int = 0  # al's k-center centres; 0 = 2K
    score_pixels: str = "grid:8"
    eval_pixels: str = "grid:2"
    members: int = 10
    epochs: int = 8
    pixels_per_image: int = 1024  # half the loop's 2048: trains twice as fast; the same for every strategy
    seed: int = 0
    device: str = "cpu"

    def check(self) -> None:
        problems = []
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            problems.append(f"unknown strategies {unknown}: choose from {', '.join(STRATEGIES)}")
        if self.rounds < 1 or self.per_round < 1 or self.repeats < 1:
            problems.append("--rounds, --per-round and --repeats must be at least 1")
        if self.val_size < 1 or self.test_size < 1:
            problems.append("--val-size and --test-size must be at least 1")
        if self.embedding not in ("activations", "w"):
            problems.append(f"--embedding must be activations or w, got {self.embedding!r}")
        # al's last round still needs al_centers images in its band below the top skip_top
        used = 1 + (self.rounds - 1) * self.al_centers
        least = used + int(np.ceil((self.al_centers + 1) / max(self.band, 1e-9)))
        if "al" in self.strategies and self.pool_size < least:
            problems.append(f"--pool-size {self.pool_size} is too small: al's last band must hold "
                            f"{self.al_centers} images; use at least {least}")
        elif self.pool_size < 1 + self.rounds * self.al_centers:
            problems.append(f"--pool-size {self.pool_size} is too small for {self.rounds} rounds")
        if not re.fullmatch(r"grid:[1-9]\d*", self.score_pixels):
            problems.append(f"--score-pixels must be grid:S here (e.g. grid:8), got {self.score_pixels!r}")
        try:
            scoring_pixels(self.eval_pixels, (16, 16))
        except ValueError:
            problems.append(f"--eval-pixels must be full, grid:S or subset:N, got {self.eval_pixels!r}")
        if not (0 <= self.skip_top < 1 and 0 < self.band <= 1 - self.skip_top):
            problems.append("need 0 <= skip-top < 1 and 0 < band <= 1 - skip-top")
        if problems:
            raise UserError("; ".join(problems), fix="see dgan-al simulate --help")

    @property
    def al_centers(self) -> int:
        return self.centers or 2 * self.per_round


@dataclass
class HeldOut:
    """A fixed set of GAN samples with exact masks, kept as native feature maps (fp16)."""

    name: str
    maps: list[list[torch.Tensor]]  # per batch: per layer [b, C_l, h_l, w_l] fp16
    truth: np.ndarray  # uint8 [N, P] oracle classes at the evaluation pixels


@dataclass
class SimulateResult:
    out: Path
    runs: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    reused: int = 0


def simulate(out: Path, settings: SimulateSettings, progress: ProgressCallback = silent) -> SimulateResult:
    settings.check()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings_path = out / "settings.json"
    wanted = asdict(settings) | {"strategies": list(settings.strategies)}
    if settings_path.is_file():
        previous = json.loads(settings_path.read_text())
        same = {k: v for k, v in previous.items() if k not in ("strategies", "repeats")} == \
               {k: v for k, v in wanted.items() if k not in ("strategies", "repeats")}
        if not same:
            raise UserError("this folder holds a simulation with other settings", path=settings_path,
                            fix="use a new --out, or the same settings (strategies and repeats may change)")
    atomic_write_json(settings_path, wanted)
    device = resolve_device(settings.device)
    from dgan_al.generators import load_generator

    generator = load_generator("toy-faces", device=str(device))
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
            held = [_held_out(generator, name, seed, n, settings.eval_pixels, device)
                    for name, seed, n in (("val", VAL_SEED, settings.val_size), ("test", TEST_SEED, settings.test_size))]
        base = _base_workspace(out, repeat, settings, generator, device, held)
        for strategy in todo:
            start = step

            def tick(number: int) -> None:
                progress("simulating (strategy rounds)", start + number, total)

            run = _run_strategy(out, base, repeat, strategy, settings, generator, device, held, tick)
            step += settings.rounds
            atomic_write_json(_run_path(out, repeat, strategy), run)
            result.runs.append(run)
            progress("simulating (strategy rounds)", step, total)
    progress("simulating (strategy rounds)", total, total)
    result.summary = summarize(result.runs, settings)
    atomic_write_json(out / "simulate.json", {"settings": wanted, "summary": result.summary, "runs": result.runs})
    plot_simulation(result.summary, out / "simulate.png", settings)
    atomic_write_text(out / "table.txt", table_text(result.summary))
    result.files = {"results": str(out / "simulate.json"), "plot": str(out / "simulate.png"),
                    "table": str(out / "table.txt")}
    return result


def _run_path(out: Path, repeat: int, strategy: str) -> Path:
    return out / "runs" / f"r{repeat}-{strategy}.json"


# --- held-out sets and evaluation -------------------------------------------------------------------------

def _held_out(generator, name: str, seed: int, n: int, pixels: str, device) -> HeldOut:
    z = sample_latents(generator.z_dim, n, seed=seed)
    _, ys, xs = _pixel_index(pixels, generator.geometry.size)
    maps, truth = [], []
    for start in range(0, n, 16):
        zb = z[start:start + 16]
        maps.append([f.to(torch.float16) for f in generator.synthesize(zb.to(device)).features])
        truth.append(generator.oracle_mask(zb)[:, ys, xs])
    return HeldOut(name, maps, np.concatenate(truth).reshape(n, -1))


def _pixel_index(pixels: str, size: tuple[int, int]) -> tuple[str, np.ndarray, np.ndarray]:
    """Index arrays selecting the scored pixels of a mask [H, W] in the order score_images returns them."""
    kind, ys, xs = scoring_pixels(pixels, size)
    if kind == "full":
        h, w = size
        return kind, *np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    if kind == "grid":
        return kind, *np.meshgrid(ys.numpy(), xs.numpy(), indexing="ij")
    return kind, ys.numpy(), xs.numpy()


def evaluate_on(ensemble: PixelEnsemble, held: HeldOut, pixels: str, classes: list[str]) -> dict:
    """mIoU and per-class IoU of the ensemble's votes against the oracle on a held-out set."""
    conf = np.zeros((len(classes), len(classes)), dtype=np.int64)
    row = 0
    for maps in held.maps:
        scores = ensemble.score_images([m.float() for m in maps], pixels=pixels)
        for labels in scores.labels.numpy():
            conf += confusion_matrix(labels, held.truth[row], len(classes))
            row += 1
    iou = iou_per_class(conf)
    return {"miou": mean_iou(conf), "class_iou": {c: (None if np.isnan(v) else float(v)) for c, v in zip(classes, iou)}}


# --- one repeat's shared start ----------------------------------------------------------------------------

def _configure(ws: Workspace, settings: SimulateSettings, repeat: int) -> Workspace:
    cfg = ws.config
    cfg.ensemble.members, cfg.ensemble.epochs = settings.members, settings.epochs
    cfg.ensemble.pixels_per_image, cfg.ensemble.seed = settings.pixels_per_image, settings.seed + repeat
    cfg.selection.skip_top, cfg.selection.band = settings.skip_top, settings.band
    cfg.selection.centers, cfg.selection.annotate = settings.al_centers, settings.per_round
    cfg.selection.embedding, cfg.selection.score_pixels = settings.embedding, settings.score_pixels
    cfg.run.device, cfg.run.prefill = settings.device, False
    atomic_write_text(ws.config_path, render_config(cfg))
    return Workspace.find(ws.root)


def _base_workspace(out: Path, repeat: int, settings: SimulateSettings, generator, device, held) -> dict:
    """Round 0 of a repeat: the workspace with the mean image annotated, its model, scores and evaluation."""
    folder = out / "work" / f"r{repeat}" / "base"
    ready = folder / "ready.json"
    if not ready.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        init_workspace(folder, "toy-faces", pool_size=settings.pool_size, seed=settings.seed + repeat,
                       device=str(device))
        _share_feature_cache(folder, out / "work" / "cache")
        ws = _configure(Workspace.find(folder), settings, repeat)
        oracle_annotate(ws, 0, generator=generator)
        store = AnnotationStore(ws.annotations_dir)
        import_annotations(ws, store)
        model = train_on_annotations(ws, store, store.ids(), generator, device)
        model.save(folder / "model0.pt")
        evaluation = {h.name: evaluate_on(model, h, settings.eval_pixels, ws.config.classes) for h in held}
        atomic_write_json(ready, {"evaluation": evaluation})
    model = PixelEnsemble.load(folder / "model0.pt", device=device)
    grid = None
    if any(s in ("uncertainty", "al") for s in settings.strategies) or settings.embedding == "activations":
        grid = PoolGrid(generator, Workspace.find(folder).pool_latents(generator.z_dim), settings.score_pixels, device)
    return {"folder": folder, "model": model, "evaluation": json.loads(ready.read_text())["evaluation"],
            "scores": None, "grid": grid}


def _share_feature_cache(workspace: Path, shared: Path) -> None:
    """Point the workspace's feature cache at one folder shared by every run (features depend on z only)."""
    shared.mkdir(parents=True, exist_ok=True)
    cache = workspace / "rounds" / "cache"
    if cache.is_dir() and not cache.is_symlink():
        shutil.rmtree(cache)
    cache.symlink_to(shared.resolve(), target_is_directory=True)


# --- one strategy, all rounds -----------------------------------------------------------------------------

def _run_strategy(out: Path, base: dict, repeat: int, strategy: str, settings: SimulateSettings, generator,
                  device, held, tick) -> dict:
    t0 = time.perf_counter()
    folder = out / "work" / f"r{repeat}" / strategy
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base["folder"], folder, symlinks=True,
                    ignore=shutil.ignore_patterns("model0.pt", "ready.json", ".dgan-al.lock"))
    ws = Workspace.find(folder)
    store = AnnotationStore(ws.annotations_dir)
    classes = ws.config.classes
    pool = ws.pool_latents(generator.z_dim)
    pool_seed = ws.config.pool.seed
    rng = np.random.default_rng([settings.seed, repeat, STRATEGIES.index(strategy)])
    model = base["model"]
    curve = [{"round": 0, "n_annotations": len(store.records), **base["evaluation"]}]
    exported: set[int] = set()
    for number in range(1, settings.rounds + 1):
        candidates = np.array([i for i in range(len(pool)) if i not in exported], dtype=np.int64)
        scores = embeddings = None
        if strategy in ("uncertainty", "al") or (strategy == "coreset" and settings.embedding == "activations"):
            if number == 1 and base["scores"] is not None:
                scores, embeddings = base["scores"]
            else:
                scores, embeddings = base["grid"].score(model)
                if number == 1:
                    base["scores"] = (scores, embeddings)  # round 1 of every strategy uses the round-0 model
        if settings.embedding == "w" and strategy in ("coreset", "al"):
            embeddings = _w(generator, pool, device)
        chosen, keep = _choose(strategy, candidates, scores, embeddings, settings, rng,
                               lambda: _seed_embeddings(ws, store, model, generator, settings, device))
        exported.update(int(i) for i in chosen)
        items = [ExportItem(id=latent_id(pool_seed, int(i)), z=pool[int(i)], latent={"seed": pool_seed, "index": int(i)},
                            score=None if scores is None else float(scores[int(i)])) for i in chosen]
        export_round(ws.round_dir(number), number, generator, items, classes, prefill=False, keep=keep,
                     selection={"strategy": strategy}, rule=f"simulate: strategy {strategy}")
        oracle_annotate(ws, number, keep=keep if strategy in EXPERT_STRATEGIES else None, generator=generator)
        import_annotations(ws, store)
        model = train_on_annotations(ws, store, store.ids(), generator, device)
        curve.append({"round": number, "n_annotations": len(store.records),
                      **{h.name: evaluate_on(model, h, settings.eval_pixels, classes) for h in held}})
        tick(number)
    return {"strategy": strategy, "repeat": repeat, "curve": curve, "seconds": round(time.perf_counter() - t0, 1),
            "annotated": store.ids()}


def _choose(strategy: str, candidates: np.ndarray, scores, embeddings, settings: SimulateSettings, rng,
            seed_embeddings) -> tuple[np.ndarray, int | None]:
    """Pool indices to export this round, and how many of them the expert keeps (None: all)."""
    k = settings.per_round
    if strategy == "random":
        return rng.choice(candidates, size=k, replace=False), None
    if strategy == "random-expert":
        return rng.choice(candidates, size=2 * k, replace=False), k
    if strategy == "uncertainty":
        order = np.lexsort((candidates, -scores[candidates]))
        return candidates[order[:k]], None
    if strategy == "coreset":
        result = k_center_greedy(embeddings[candidates], seed_embeddings(), k)
        return candidates[result.order], None
    band = uncertainty_band(scores[candidates], settings.skip_top, settings.band)
    result = k_center_greedy(embeddings[candidates][band], seed_embeddings(), settings.al_centers)
    return candidates[band][result.order], k


@torch.no_grad()
def on_grid(features: list[torch.Tensor], geometry: LabelGeometry, pixels: str) -> list[torch.Tensor]:
    """Each map bilinearly resampled at the scoring grid's label pixels: [B, C_l, ny, nx] per layer.

    Exactly the values ``score_images(..., pixels="grid:S")`` reads (upsampling is linear and separable),
    so the ensemble run on these maps with the identity geometry ``LabelGeometry.full(ny, nx)`` gives the
    same JS, votes and embedding at those pixels — without the generator. The pool is generated once
    per repeat and every later round scores it from these (~0.5 MB fp16 per toy-faces image at grid:8).
    """
    kind, ys, xs = scoring_pixels(pixels, geometry.size)
    if kind != "grid":
        raise ValueError(f"on_grid needs a grid:S pixel set, got {pixels!r}")
    (canvas_h, canvas_w), (top, left, _, _) = geometry.canvas, geometry.crop
    out = []
    for f in features:
        uy = interpolation_matrix(f.shape[2], canvas_h, ys + top).to(f.device)  # [ny, h]
        ux = interpolation_matrix(f.shape[3], canvas_w, xs + left).to(f.device)  # [nx, w]
        out.append(torch.matmul(uy, torch.matmul(f.float(), ux.t())))  # [B, C, ny, nx]
    return out


class PoolGrid:
    """The pool's feature maps at the scoring grid, fp16 in memory: score a round without the generator."""

    def __init__(self, generator, pool: torch.Tensor, pixels: str, device, batch: int = 16):
        self.pixels = pixels
        chunks: list[list[torch.Tensor]] = []
        with torch.no_grad():
            for start in range(0, len(pool), batch):
                out = generator.synthesize(pool[start:start + batch].to(device))
                chunks.append([g.to(torch.float16) for g in on_grid(out.features, generator.geometry, pixels)])
        self.chunks = chunks
        ny, nx = chunks[0][0].shape[2:]
        self.geometry = LabelGeometry.full(int(ny), int(nx))
        self.scale = generator.geometry.size[0] * generator.geometry.size[1] / (ny * nx)

    @torch.no_grad()
    def score(self, model: PixelEnsemble) -> tuple[np.ndarray, np.ndarray]:
        """(image scores [P] — the estimated sum of JS over all label pixels, as ``score_images`` —, embeddings)."""
        scores, embeddings = [], []
        for maps in self.chunks:
            s = model.score_images([m.float() for m in maps], geometry=self.geometry, pixels="full")
            scores.append(s.image_score.numpy() * self.scale)
            embeddings.append(s.embedding.numpy())
        return np.concatenate(scores), np.concatenate(embeddings)


@torch.no_grad()
def _w(generator, z: torch.Tensor, device) -> np.ndarray:
    return generator.map(z).numpy()


def _seed_embeddings(ws: Workspace, store: AnnotationStore, model: PixelEnsemble, generator,
                     settings: SimulateSettings, device) -> np.ndarray:
    """The annotated images embedded like the pool (k-center starts from them)."""
    ids = store.ids()
    if settings.embedding == "w":
        return _w(generator, annotation_latents(store, ids), device)
    paths = cached_features(generator, ws.cache_dir, ids, annotation_latents(store, ids))
    return np.concatenate([model.score_images([m[None].float().to(device) for m in load_maps(p)],
                                              pixels=settings.score_pixels).embedding.numpy() for p in paths])


# --- results -----------------------------------------------------------------------------------------------

def summarize(runs: list[dict], settings: SimulateSettings) -> dict:
    """Per strategy: mIoU mean ± std over repeats at each number of annotations, per-class IoU at the end."""
    summary = {}
    for strategy in settings.strategies:
        mine = [r for r in runs if r["strategy"] == strategy]
        if not mine:
            continue
        n_points = min(len(r["curve"]) for r in mine)
        entry = {"repeats": len(mine), "n_annotations": [], "val_mean": [], "val_std": [], "test_mean": [],
                 "test_std": []}
        for p in range(n_points):
            entry["n_annotations"].append(int(np.mean([r["curve"][p]["n_annotations"] for r in mine])))
            for split in ("val", "test"):
                values = [r["curve"][p][split]["miou"] for r in mine]
                entry[f"{split}_mean"].append(float(np.mean(values)))
                entry[f"{split}_std"].append(float(np.std(values)))
        final = [r["curve"][n_points - 1]["test"]["class_iou"] for r in mine]
        entry["final_class_iou_test"] = {
            c: (None if all(f[c] is None for f in final) else float(np.mean([f[c] for f in final if f[c] is not None])))
            for c in final[0]}
        summary[strategy] = entry
    return summary


def table_text(summary: dict) -> str:
    """Test mIoU mean ± std per strategy (rows) at each number of annotations (columns)."""
    if not summary:
        return ""
    points = next(iter(summary.values()))["n_annotations"]
    lines = ["test mIoU (mean ± std over repeats) by number of annotated images",
             "strategy".ljust(15) + "".join(f"{n:>16d}" for n in points)]
    for strategy, entry in summary.items():
        lines.append(strategy.ljust(15) + "".join(f"{m:>9.3f} ± {s:.3f}" for m, s in
                                                  zip(entry["test_mean"], entry["test_std"])))
    return "\n".join(lines) + "\n"


def plot_simulation(summary: dict, path: Path, settings: SimulateSettings) -> None:
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100, gridspec_kw={"width_ratios": [1, 1.3]})
    for strategy, entry in summary.items():
        x, m, s = entry["n_annotations"], np.array(entry["test_mean"]), np.array(entry["test_std"])
        left.plot(x, m, marker="o", label=strategy)
        left.fill_between(x, m - s, m + s, alpha=0.15)
    left.set_xlabel("annotated images")
    left.set_ylabel("test mIoU against the oracle")
    left.set_title(f"{settings.repeats} repeat(s), {settings.per_round} per round, pool {settings.pool_size}")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    classes = list(next(iter(summary.values()))["final_class_iou_test"])
    width = 0.8 / max(1, len(summary))
    for k, (strategy, entry) in enumerate(summary.items()):
        values = [entry["final_class_iou_test"][c] or 0.0 for c in classes]
        right.bar(np.arange(len(classes)) + k * width - 0.4 + width / 2, values, width, label=strategy)
    right.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    right.set_ylim(0, 1)
    right.set_ylabel("IoU")
    right.set_title("per class after the last round (test)")
    right.grid(axis="y", alpha=0.3)
    save_figure(fig, path)

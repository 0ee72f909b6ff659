"""Distil a small StyleGAN2 from the toy-faces renderer: G(z) ~ render(params_from_latent(z)).

Training is plain supervised regression, no adversary: the renderer gives the exact target image for
every z, so the loss is an L1 on the image plus L1 on 2x and 4x average-pooled copies (the multi-scale
term keeps colours and layout right while the fine edges are still being learnt). ``part_weight``
multiplies the loss on the small and rare parts' pixels (plain L1 learns them last); ``rare_boost``
gives a fraction of the training scenes one extra rare part. Adam with a short warm-up and a cosine
decay; an exponential moving average of the weights is what gets exported. Resumable: a checkpoint is
written every few hundred steps (and when ``minutes`` runs out) and ``resume`` continues from it.

How the shipped weights were made, and what was tried to make G draw glasses, earrings and teeth:
``docs/toy-faces.md``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dgan_al.device import cpu_training
from dgan_al.files import atomic_torch_save
from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.stylegan2 import StyleGAN2, StyleGAN2Config
from dgan_al.progress import ProgressCallback, silent

TRAIN_SEED = 1_000  # latent streams used for training data, disjoint from pools (seed 0..) by convention
HELD_OUT_SEED = 2_000  # the 200 latents PSNR is reported on


# The mapping network's learning-rate multiplier. StyleGAN2 uses 0.01 to keep adversarial training
# stable; distillation is plain regression, and the mapping (z -> scene) is what it has to learn. Resumed
# from the same step-6000 checkpoint for 400 steps, multiplier 1 lowered the loss about twice as fast as 0.1.
MAPPING_LR_MUL = 1.0
FIRST_RUN_MAPPING_LR_MUL = 0.1  # what checkpoints without a recorded multiplier were trained with


def toy_config(mapping_lr_mul: float = MAPPING_LR_MUL) -> StyleGAN2Config:
    """The toy-faces generator: 128px, ~1 GFLOP/image, 1040 feature channels."""
    return StyleGAN2Config(resolution=128, z_dim=32, w_dim=128, mapping_layers=4, mapping_lr_mul=mapping_lr_mul,
                           channels=(128, 128, 128, 64, 48, 24))


def rescale_mapping(state: dict, from_lr_mul: float, to_lr_mul: float) -> dict:
    """A state dict whose mapping layers compute the same function under another lr multiplier.

    Equalised learning rate stores a mapping weight as ``runtime / (lr_mul / sqrt(fan_in))`` and a bias as
    ``runtime / lr_mul``, so both stored values scale by from/to.
    """
    k = from_lr_mul / to_lr_mul
    return {name: (value * k if name.startswith("mapping.fcs.") else value) for name, value in state.items()}


@dataclass
class DistillSettings:
    steps: int = 5_000
    batch: int = 16
    lr: float = 4e-3
    warmup: int = 200
    n_train: int = 40_000  # rendered scenes (re-used across epochs)
    n_held_out: int = 200
    ema_beta: float = 0.999
    minutes: float | None = None  # stop early after this much training time
    checkpoint_every: int = 250
    threads: int | None = None  # torch CPU threads (1 avoids slow spinning when the cores are shared)
    workers: int | None = None  # rendering processes (default: every CPU core)
    seed: int = 0
    device: str = "cpu"
    rare_boost: float = 0.0  # fraction of training scenes given one rare part (see boost_rare)
    part_weight: float = 1.0  # loss weight of DETAIL_CLASSES pixels relative to the rest (1 = plain L1)
    init: str | None = None  # start from these toy-faces weights (a fresh run only; --resume wins)
    extra: dict = field(default_factory=dict)


def boost_rare(z: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """A copy of latents z [N, 32] in which ``fraction`` of the rows show one more rare part.

    Each chosen row gets one rare part (glasses, hat, beard or earrings, uniformly) by redrawing that
    part's coordinate, as the scene reads it (``with_coordinates``), from its tail (u > RARE_THRESHOLD),
    so the part's style and colour stay spread as in the natural distribution. Rows not chosen are
    unchanged. A part is then present in about 0.1 + 0.9 * fraction / 4 of the scenes instead of 0.1,
    which gives the generator several times the examples of the rare parts that plain sampling does.
    Deterministic in ``seed``.
    """
    from scipy.special import ndtri

    from dgan_al.generators.toy_faces.scene import RARE_LATENT_INDEX, RARE_THRESHOLD, with_coordinates

    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"rare_boost is a fraction in [0, 1], got {fraction}")
    out = z.clone()
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(z), generator=gen)[: round(fraction * len(z))]
    coords = torch.tensor(list(RARE_LATENT_INDEX.values()))[torch.randint(len(RARE_LATENT_INDEX), (len(rows),), generator=gen)]
    # u uniform in (RARE_THRESHOLD, 1), kept off 1 so that the normal quantile stays finite
    u = RARE_THRESHOLD + (1 - RARE_THRESHOLD) * (torch.rand(len(rows), generator=gen, dtype=torch.float64) * 0.9999 + 0.00005)
    t = ndtri(u.numpy())
    for k in coords.unique().tolist():
        pick = rows[coords == k]
        out[pick] = torch.from_numpy(with_coordinates(z[pick].numpy(), {k: t[(coords == k).numpy()]})).to(z.dtype)
    return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB between uint8 images [B,H,W,3]."""
    mse = (a.float() - b.float()).square().flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


# The parts the generator learns last: small (a few dozen to a few hundred pixels) or rare. With
# --part-weight their pixels count more in the loss.
DETAIL_CLASSES = ("eye", "eyebrow", "nose", "mouth", "teeth", "ear", "glasses", "hat", "beard", "earring")


def detail_mask(masks: np.ndarray) -> np.ndarray:
    """uint8 0/1 [..., H, W]: where a class mask [..., H, W] shows one of DETAIL_CLASSES."""
    from dgan_al.generators.toy_faces.classes import CLASS_ID, CLASSES

    table = np.zeros(len(CLASSES), dtype=np.uint8)
    table[[CLASS_ID[name] for name in DETAIL_CLASSES]] = 1
    return table[masks]


def _render_chunk(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from dgan_al.generators.toy_faces.render import render_latents

    rgb, masks = render_latents(z)
    return rgb, detail_mask(masks)


def render_targets(z: torch.Tensor, progress: ProgressCallback = silent, task: str = "rendering",
                   workers: int = 1, chunk: int = 256, details: bool = False):
    """Render the scenes of z [N,32] -> uint8 [N,H,W,3] (chunked, with progress; ``workers`` processes).

    With ``details``, also their ``detail_mask`` (uint8 0/1 [N,H,W]): returns (images, details).
    The result does not depend on ``workers``: each chunk is rendered by the same deterministic code."""
    pieces = [z[start:start + chunk].numpy() for start in range(0, len(z), chunk)]
    images, detail, done = [], [], 0

    def keep(rgb: np.ndarray, parts: np.ndarray) -> None:
        nonlocal done
        images.append(torch.from_numpy(np.ascontiguousarray(rgb)))
        if details:
            detail.append(torch.from_numpy(np.ascontiguousarray(parts)))
        done += len(rgb)
        progress(task, done, len(z))

    if workers > 1 and len(pieces) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent may already run torch threads (fork would copy their locks)
        with ProcessPoolExecutor(min(workers, len(pieces)), mp_context=multiprocessing.get_context("spawn")) as pool:
            for rgb, parts in pool.map(_render_chunk, pieces):
                keep(rgb, parts)
    else:
        for piece in pieces:
            keep(*_render_chunk(piece))
    return (torch.cat(images), torch.cat(detail)) if details else torch.cat(images)


def _loss(fake: torch.Tensor, real: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """L1 at full, 1/2 and 1/4 resolution. ``weight`` [B,1,H,W] (optional) weighs pixels: each term is
    the weighted mean, so that weights of all ones give the plain loss; the coarser terms pool it."""
    loss = fake.new_zeros(())
    for k in (1, 2, 4):
        f, r = (fake, real) if k == 1 else (F.avg_pool2d(fake, k), F.avg_pool2d(real, k))
        if weight is None:
            loss = loss + (f - r).abs().mean()
        else:
            w = weight if k == 1 else F.avg_pool2d(weight, k)
            loss = loss + ((f - r).abs() * w).mean() / w.mean()
    return loss


def _to_unit(images_u8: torch.Tensor) -> torch.Tensor:
    return (images_u8.permute(0, 3, 1, 2).float() - 128) / 127.5


def evaluate(model: StyleGAN2, z: torch.Tensor, targets: torch.Tensor, device) -> float:
    from dgan_al.generators.stylegan2 import to_uint8

    model.eval()
    scores = []
    with torch.no_grad():
        for start in range(0, len(z), 50):
            img, _ = model(z[start:start + 50].to(device))
            scores.append(psnr(to_uint8(img).cpu(), targets[start:start + 50]))
    return float(torch.cat(scores).mean())


def distill(out_dir: str | Path, settings: DistillSettings, resume: bool = False,
            progress: ProgressCallback = silent) -> dict:
    """Train and write ``out_dir/toy_faces.pt`` (the shippable weights), ``loss.png`` and ``log.json``.

    The process's torch thread count and denormal flushing are set for the run and restored after it."""
    with cpu_training(settings.threads):
        return _train(Path(out_dir), settings, resume, progress)


def _train(out_dir: Path, settings: DistillSettings, resume: bool, progress: ProgressCallback) -> dict:
    import json

    if not settings.part_weight > 0:
        raise ValueError(f"part_weight must be positive, got {settings.part_weight}")
    device = torch.device(settings.device)
    config = toy_config()
    torch.manual_seed(settings.seed)
    model = StyleGAN2(config, seed=settings.seed).to(device)
    ema = StyleGAN2(config, seed=settings.seed).to(device).eval().requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    init_identity = None
    if settings.init and not (resume and (out_dir / "checkpoint.pt").exists()):
        init_identity = _load_init(model, settings.init)
        ema.load_state_dict(model.state_dict())
    out_dir.mkdir(parents=True, exist_ok=True)  # after the checks above: a refused run leaves nothing
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=(0.9, 0.99))
    history: list[tuple[int, float]] = []  # (step, smoothed training loss)
    val_history: list[tuple[int, float]] = []  # (step, held-out PSNR of the EMA weights), at each checkpoint
    step = 0
    earlier_minutes = 0.0  # training time of the runs this one resumes
    ckpt_path = out_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        was = float(ckpt.get("mapping_lr_mul", FIRST_RUN_MAPPING_LR_MUL))
        model.load_state_dict(rescale_mapping(ckpt["model"], was, config.mapping_lr_mul))
        ema.load_state_dict(rescale_mapping(ckpt["ema"], was, config.mapping_lr_mul))
        opt_state = ckpt["opt"]
        if was != config.mapping_lr_mul:  # Adam's moments of the rescaled mapping parameters start afresh
            names = [name for name, _ in model.named_parameters()]
            for i, name in enumerate(names):
                if name.startswith("mapping."):
                    opt_state["state"].pop(i, None)
        opt.load_state_dict(opt_state)
        step = int(ckpt["step"])
        earlier_minutes = float(ckpt.get("train_minutes", 0.0))
        init_identity = ckpt.get("init")
        history = [tuple(h) for h in ckpt["history"]]
        val_history = [tuple(h) for h in ckpt.get("val_history", [])]

    workers = settings.workers or os.cpu_count() or 1
    z_train = sample_latents(config.z_dim, settings.n_train, seed=TRAIN_SEED)
    if settings.rare_boost:
        z_train = boost_rare(z_train, settings.rare_boost, seed=TRAIN_SEED)
    weighted = settings.part_weight != 1.0
    targets = render_targets(z_train, progress, "rendering training scenes", workers, details=weighted)
    if weighted:
        targets, details = targets
    z_val = sample_latents(config.z_dim, settings.n_held_out, seed=HELD_OUT_SEED)
    val_targets = render_targets(z_val, progress, "rendering held-out scenes", workers)
    if device.type == "cuda":  # keep the training set on the GPU: no host copy per step
        torch.backends.cudnn.benchmark = True
        z_train, targets = z_train.to(device), targets.to(device)
        if weighted:
            details = details.to(device)

    gen = torch.Generator().manual_seed(settings.seed + step)
    t0 = time.time()
    running = None
    pending: list[torch.Tensor] = []  # losses not yet read back (reading each one would stall a GPU)

    def read_losses() -> None:
        nonlocal running
        if pending:
            for value in torch.stack(pending).tolist():
                running = value if running is None else 0.98 * running + 0.02 * value
            pending.clear()

    def save_checkpoint() -> None:
        read_losses()
        if step and (not val_history or val_history[-1][0] != step):
            val_history.append((step, evaluate(ema, z_val, val_targets, device)))
        atomic_torch_save(ckpt_path, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                                      "step": step, "history": history, "val_history": val_history,
                                      "mapping_lr_mul": config.mapping_lr_mul, "init": init_identity,
                                      "train_minutes": earlier_minutes + (time.time() - t0) / 60})
        shown = running if running is not None else float("nan")
        held_out = f"  held-out {val_history[-1][1]:.2f} dB" if val_history and val_history[-1][0] == step else ""
        with open(out_dir / "log.txt", "a") as log:
            log.write(f"step {step}  loss {shown:.4f}{held_out}  lr {lr:.2e}  {(time.time() - t0) / 60:.1f} min\n")

    lr = settings.lr
    while step < settings.steps:
        if settings.minutes is not None and (time.time() - t0) / 60 > settings.minutes:
            save_checkpoint()  # so that --resume goes on from exactly here
            break
        model.train()
        idx = torch.randint(len(z_train), (settings.batch,), generator=gen).to(device)
        z = z_train[idx]
        real = _to_unit(targets[idx])
        lr = settings.lr * min(1.0, (step + 1) / settings.warmup) * (0.55 + 0.45 * math.cos(math.pi * step / settings.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        fake, _ = model(z)
        weight = 1.0 + (settings.part_weight - 1.0) * details[idx].unsqueeze(1).float() if weighted else None
        loss = _loss(fake, real, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            beta = min(settings.ema_beta, (1 + step) / (10 + step))
            torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - beta)
        step += 1
        pending.append(loss.detach())
        if step % 25 == 0:
            read_losses()
            history.append((step, running))
        progress("distilling", step, settings.steps)
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            save_checkpoint()

    if val_history and val_history[-1][0] == step:  # the last checkpoint has just measured it
        held_out_psnr = val_history[-1][1]
    else:
        held_out_psnr = evaluate(ema, z_val, val_targets, device)
    plot_loss(history, out_dir / "loss.png", held_out_psnr, val_history)
    ema = ema.cpu()
    from dgan_al.generators.toy_faces.scene import WORLD_VERSION

    info = {"steps": step, "held_out_psnr_db": held_out_psnr, "world": WORLD_VERSION,
            "train_minutes": earlier_minutes + (time.time() - t0) / 60,  # all runs together
            "settings": asdict(settings)}
    if init_identity:
        info["init"] = init_identity
    export_weights(ema, out_dir / "toy_faces.pt", info)
    (out_dir / "log.json").write_text(json.dumps(info, indent=2))
    return info


def _load_init(model: StyleGAN2, source: str) -> str:
    """Copy toy-faces weights (a file, or ``toy-faces`` for the shipped ones) into model; their identity."""
    from dgan_al.errors import UserError
    from dgan_al.generators.toy_faces.generator import load_toy_faces

    gen = load_toy_faces(path=None if source == "toy-faces" else Path(source))
    if gen.model.config != model.config:
        raise UserError("these weights have another network shape than the toy-faces generator", path=source,
                        fix="start from weights made by `dgan-al toy distill`, or leave --init out")
    model.load_state_dict(gen.model.state_dict())
    return gen.identity


def export_weights(model: StyleGAN2, path: Path, info: dict) -> None:
    """Write the shippable file: config, EMA weights, a few stored outputs the tests check against."""
    from dgan_al.generators.stylegan2 import to_uint8
    from dgan_al.generators.toy_faces.render import render_latents
    from dgan_al.generators.stylegan2 import estimate_w_avg

    z_check = sample_latents(model.config.z_dim, 4, seed=HELD_OUT_SEED + 1)
    with torch.no_grad():
        model.mapping.w_avg.copy_(estimate_w_avg(model))
        img, feats = model.eval()(z_check)
    _, masks = render_latents(z_check.numpy())
    payload = {
        "format": "dgan-al toy-faces generator",
        "version": 1,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "info": {k: v for k, v in info.items() if k != "settings"} | {"settings": str(info.get("settings"))},
        "check": {
            "z": z_check,
            "images": to_uint8(img),
            "feature_means": torch.stack([f.mean() for f in feats]),
            "oracle_masks": torch.from_numpy(np.ascontiguousarray(masks)),
        },
    }
    atomic_torch_save(path, payload)


def plot_loss(history: list[tuple[int, float]], path: Path, held_out_psnr: float | None = None,
              val_history: list[tuple[int, float]] = ()) -> None:
    from dgan_al.report.figures import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if history:
        steps, losses = zip(*history)
        ax.plot(steps, losses, label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("L1 + multi-scale L1 (smoothed)")
    ax.set_yscale("log")
    if val_history:
        right = ax.twinx()
        steps, values = zip(*val_history)
        right.plot(steps, values, "o-", color="tab:orange", markersize=3, label="held-out PSNR (EMA)")
        right.set_ylabel("held-out PSNR, dB")
        fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.88), fontsize=8)
    title = "toy-faces distillation"
    if held_out_psnr is not None:
        title += f" - held-out PSNR {held_out_psnr:.2f} dB"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    save_figure(fig, path)

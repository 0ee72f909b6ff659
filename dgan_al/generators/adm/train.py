"""Train a small ADM UNet on toy-faces renders: the offline test bed of the diffusion feature path.

guided-diffusion's plain DDPM objective (Ho et al.; ``GaussianDiffusion.training_losses`` with
``LossType.MSE``, epsilon prediction, ``learn_sigma`` false): for a render x0 in [-1, 1], a step t uniform
in 0 .. diffusion_steps - 1 and eps ~ N(0, I),

    loss = mean((model(q_sample(x0, t, eps), t) - eps) ** 2)

with t passed unscaled (``rescale_timesteps`` false). Renders come from ``render_latents`` at 128 px and
are box-downscaled (average pooling, the renderer's own anti-aliasing filter) to ``image_size``; each step
renders its batch afresh from a fixed latent stream (``TRAIN_SEED``, apart from pools, test sets and the
GAN's distillation scenes). Initialisation follows upstream (``zero_module`` on each ResBlock's last conv,
the attention projections and the output conv). Adam, linear warm-up, constant rate, an EMA of the
weights; the EMA weights are what gets exported.

Resumable: ``OUT/checkpoint.pt`` (model, EMA, Adam, step, history) is written atomically every few hundred
steps and when ``minutes`` runs out; ``resume`` continues from it. Every random draw of step k (batch
indices, t, eps) comes from a generator seeded by (seed, k), so a resumed run computes the same weights as
an uninterrupted one. The result is ``OUT/adm.pt`` (a guided-diffusion state dict, read by
``load_adm_checkpoint``) and ``OUT/adm.pt.json`` (guided-diffusion's flag names), plus ``loss.png``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dgan_al.device import cpu_training
from dgan_al.files import atomic_torch_save, atomic_write_text
from dgan_al.generators.adm.features import alphas_cumprod
from dgan_al.generators.adm.unet import UNetConfig, UNetModel
from dgan_al.generators.protocol import sample_latents
from dgan_al.progress import ProgressCallback, silent

TRAIN_SEED = 7_000  # latent stream of the diffusion model's training renders (unused elsewhere)
RENDER_SIZE = 128  # the renderer's resolution

# The shipped model (docs/diffusion-toy.md) and the features its gate chose by leave-one-out on the 7
# training renders: renders box-downscaled to 64 px, step 50, decoder blocks 2-7, upsampled to 128 px labels.
TOY_WEIGHTS = Path(__file__).with_name("toy_faces_adm.pt")
TOY_SIZE, TOY_STEPS, TOY_BLOCKS = 64, (50,), (2, 3, 4, 5, 6, 7)


@dataclass
class ADMTrainSettings:
    """The UNet (guided-diffusion's names), the diffusion and the optimisation of one training run."""

    image_size: int = 64
    num_channels: int = 32
    num_res_blocks: int = 1
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    attention_resolutions: tuple[int, ...] = (8,)
    num_head_channels: int = 32
    diffusion_steps: int = 1000
    noise_schedule: str = "linear"
    steps: int = 4_000
    batch: int = 16
    lr: float = 3e-4
    warmup: int = 100
    ema_beta: float = 0.999
    n_train: int = 50_000  # latents of the training stream the batches are drawn from
    minutes: float | None = None  # stop early after this much training time (then --resume)
    checkpoint_every: int = 200
    threads: int | None = None  # torch CPU threads (1 when the cores are shared)
    seed: int = 0

    def unet_config(self) -> UNetConfig:
        return UNetConfig(image_size=self.image_size, num_channels=self.num_channels,
                          num_res_blocks=self.num_res_blocks, channel_mult=tuple(self.channel_mult),
                          attention_resolutions=tuple(self.attention_resolutions),
                          num_heads=4, num_head_channels=self.num_head_channels,
                          use_scale_shift_norm=True)

    def flags(self) -> dict:
        """``<weights>.pt.json``: MODEL_FLAGS and DIFFUSION_FLAGS as guided-diffusion spells them."""
        return {"image_size": self.image_size, "num_channels": self.num_channels,
                "num_res_blocks": self.num_res_blocks, "channel_mult": ",".join(map(str, self.channel_mult)),
                "attention_resolutions": ",".join(map(str, self.attention_resolutions)),
                "num_head_channels": self.num_head_channels, "num_heads": 4, "learn_sigma": False, "class_cond": False,
                "use_scale_shift_norm": True, "resblock_updown": False, "use_new_attention_order": False,
                "dropout": 0.0, "diffusion_steps": self.diffusion_steps, "noise_schedule": self.noise_schedule,
                "timestep_respacing": "", "rescale_timesteps": False}


def new_unet(settings: ADMTrainSettings) -> UNetModel:
    """A freshly initialised UNet, upstream's way: PyTorch's default init with ``zero_module`` on the
    last conv of each ResBlock, each attention's ``proj_out`` and the output conv. Seeded by settings.seed."""
    torch.manual_seed(settings.seed)
    model = UNetModel(settings.unet_config())
    zeroed = [model.out[-1]]
    for module in model.modules():
        if hasattr(module, "out_layers"):
            zeroed.append(module.out_layers[-1])
        if hasattr(module, "proj_out"):
            zeroed.append(module.proj_out)
    with torch.no_grad():
        for layer in zeroed:
            for p in layer.parameters():
                p.zero_()
    return model


def training_images(z: np.ndarray, size: int) -> torch.Tensor:
    """Renders of latents z [B, 32] at ``size`` px in [-1, 1]: float32 [B, 3, size, size] (box-downscaled)."""
    from dgan_al.generators.toy_faces.render import render_latents

    if RENDER_SIZE % size:
        raise ValueError(f"image_size {size} must divide the renders' {RENDER_SIZE} px")
    rgb, _ = render_latents(z)
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float()
    if size != RENDER_SIZE:
        x = F.avg_pool2d(x, RENDER_SIZE // size)
    return x / 127.5 - 1


def step_draws(settings: ADMTrainSettings, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step k's random draws, from a generator seeded by (seed, k): batch indices [B], t [B], eps [B,3,S,S]."""
    gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
    idx = torch.randint(settings.n_train, (settings.batch,), generator=gen)
    t = torch.randint(settings.diffusion_steps, (settings.batch,), generator=gen)
    eps = torch.randn(settings.batch, 3, settings.image_size, settings.image_size, generator=gen)
    return idx, t, eps


def ddpm_loss(model: UNetModel, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """guided-diffusion's MSE loss: mean((eps_theta(x_t, t) - eps)^2), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
    a = abar[t].float().view(-1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    return (model(x_t, t) - eps).square().mean()


def train_adm(out_dir: str | Path, settings: ADMTrainSettings, resume: bool = False,
              progress: ProgressCallback = silent) -> dict:
    """Train and write ``out_dir/adm.pt`` + ``adm.pt.json``, ``loss.png`` and ``log.json``; returns the log.

    The process's torch thread count and denormal flushing are set for the run and restored after it."""
    with cpu_training(settings.threads):
        return _train(Path(out_dir), settings, resume, progress)


def _train(out_dir: Path, settings: ADMTrainSettings, resume: bool, progress: ProgressCallback) -> dict:
    from dgan_al.generators.toy_faces.scene import Z_DIM

    model = new_unet(settings)
    ema = new_unet(settings).eval().requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    step, history, earlier_minutes, running = 0, [], 0.0, None  # history: (step, smoothed loss)
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt["settings"]["image_size"] != settings.image_size or \
                ckpt["settings"]["num_channels"] != settings.num_channels:
            from dgan_al.errors import UserError
            raise UserError("the checkpoint was trained with another network shape", path=ckpt_path,
                            fix="resume with the same settings, or use a new folder")
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        step, history = int(ckpt["step"]), [tuple(h) for h in ckpt["history"]]
        earlier_minutes = float(ckpt["train_minutes"])
        running = ckpt.get("running", history[-1][1] if history else None)
    z_train = sample_latents(Z_DIM, settings.n_train, seed=TRAIN_SEED).numpy()
    abar = torch.from_numpy(alphas_cumprod(settings.noise_schedule, settings.diffusion_steps))
    t0 = time.time()

    def save_checkpoint() -> None:
        atomic_torch_save(ckpt_path, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                                      "step": step, "history": history, "running": running, "settings": asdict(settings),
                                      "train_minutes": earlier_minutes + (time.time() - t0) / 60})
        with open(out_dir / "log.txt", "a") as log:
            log.write(f"step {step}  loss {running if running is not None else float('nan'):.5f}  "
                      f"{earlier_minutes + (time.time() - t0) / 60:.1f} min\n")

    while step < settings.steps:
        if settings.minutes is not None and (time.time() - t0) / 60 > settings.minutes:
            save_checkpoint()
            break
        idx, t, eps = step_draws(settings, step)
        x0 = training_images(z_train[idx.numpy()], settings.image_size)
        for group in opt.param_groups:
            group["lr"] = settings.lr * min(1.0, (step + 1) / settings.warmup)
        model.train()
        loss = ddpm_loss(model, x0, t, eps, abar)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            beta = min(settings.ema_beta, (1 + step) / (10 + step))
            torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - beta)
        step += 1
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        if step % 10 == 0:  # on the step count alone, so that a resumed run's history is the same
            history.append((step, running))
        progress("training the diffusion model", step, settings.steps)
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            save_checkpoint()

    minutes = earlier_minutes + (time.time() - t0) / 60
    info = {"steps": step, "final_loss": running, "train_minutes": minutes, "train_seed": TRAIN_SEED,
            "settings": asdict(settings)}
    export_weights(ema, out_dir / "adm.pt", settings)
    plot_loss(history, out_dir / "loss.png")
    atomic_write_text(out_dir / "log.json", json.dumps(info, indent=2))
    return info


def toy_diffusion_features(device: str | torch.device = "cpu"):
    """The shipped toy-faces UNet as a ``DiffusionFeatures`` source with the gate's steps and blocks.

    It takes uint8 renders box-downscaled to 64 px (``training_images``' filter, rounded to bytes); its
    ``geometry`` is 64 px, so to label at the renders' 128 px give the interpreter
    ``LabelGeometry.full(128, 128)`` instead (the maps are upsampled to it bilinearly, as in the gate)."""
    from dgan_al.generators.adm.source import DiffusionFeatures

    return DiffusionFeatures.from_checkpoint(TOY_WEIGHTS, steps=TOY_STEPS, blocks=TOY_BLOCKS, size=TOY_SIZE,
                                             device=device)


def export_weights(model: UNetModel, path: Path, settings: ADMTrainSettings) -> None:
    """``path``: the UNet's state dict alone (guided-diffusion's format); ``<path>.json``: its flags."""
    atomic_torch_save(path, {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    atomic_write_text(Path(f"{path}.json"), json.dumps(settings.flags(), indent=2) + "\n")


def plot_loss(history: list[tuple[int, float]], path: Path) -> None:
    from dgan_al.report.figures import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
    if history:
        steps, losses = zip(*history)
        ax.plot(steps, losses)
    ax.set_xlabel("step")
    ax.set_ylabel("epsilon MSE (smoothed)")
    ax.set_yscale("log")
    ax.set_title("toy-faces diffusion model")
    ax.grid(alpha=0.3)
    save_figure(fig, path)

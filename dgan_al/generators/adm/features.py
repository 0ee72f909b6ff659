"""Decoder features of an ADM UNet as ddpm-segmentation reads them (Baranchuk et al., ICLR 2022).

For each step t (in the given order): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps with one fixed eps
(their ``share_noise``), one UNet pass at t, and the outputs of the chosen ``output_blocks`` (ascending
index, as their forward hooks collect them). The result is step-major:

    [f(t_0, b_0), f(t_0, b_1), ..., f(t_1, b_0), ...]   each float32 [B, C_b, h_b, w_b]

at the block's native resolution: the interpreter projects, then upsamples, so no full-resolution map
is made here. ``abar`` comes from guided-diffusion's schedules in float64 and is cast to float32 per
step, as its ``_extract_into_tensor`` does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dgan_al.generators.adm.unet import UNetModel

SCHEDULES = ("linear", "cosine")
# ddpm-segmentation's experiment files since 2022-03-08 (README "Updates 3/9/2022"; FFHQ-34, Bedroom-28,
# Cat-15, Horse-21, CelebA-19, ADE-Bedroom-30 alike): 8448 channels per pixel for its 256 px ADM
# (num_channels 256; blocks 5-8 and 12 are 1024 + 3 x 512 + 256 wide, at 32, 32, 32, 64 and 128 px).
# Before, steps (50, 150, 250, 350) and blocks (6, 7, 8, 9): 8192 channels.
DEFAULT_STEPS = (50, 150, 250)
DEFAULT_BLOCKS = (5, 6, 7, 8, 12)


def beta_schedule(name: str, num_steps: int) -> np.ndarray:
    """guided-diffusion's ``get_named_beta_schedule``: float64 betas [num_steps].

    linear: Ho et al.'s 1e-4..0.02 over 1000 steps, both ends scaled by 1000 / num_steps.
    cosine: Nichol & Dhariwal's abar(s) = cos((s + 0.008) / 1.008 * pi / 2)^2, betas capped at 0.999.
    """
    if name == "linear":
        scale = 1000 / num_steps
        return np.linspace(scale * 0.0001, scale * 0.02, num_steps, dtype=np.float64)
    if name == "cosine":
        def alpha_bar(s: float) -> float:
            return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), 0.999)
                         for i in range(num_steps)], dtype=np.float64)
    raise ValueError(f"unknown noise schedule {name!r}; expected one of {', '.join(SCHEDULES)}")


def alphas_cumprod(name: str, num_steps: int) -> np.ndarray:
    """abar_t = prod_{s<=t} (1 - beta_s), float64 [num_steps]; index t = 0 is one step of noise."""
    return np.cumprod(1.0 - beta_schedule(name, num_steps))


def q_sample(x0: torch.Tensor, t: int, noise: torch.Tensor, abar: np.ndarray) -> torch.Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise; x0 [B,3,H,W], noise [B or 1,3,H,W]."""
    if not 0 <= t < len(abar):
        raise ValueError(f"step {t} is outside the schedule's 0..{len(abar) - 1}")
    a = torch.tensor(np.sqrt(abar[t]), dtype=torch.float64).float()
    s = torch.tensor(np.sqrt(1.0 - abar[t]), dtype=torch.float64).float()
    return a.to(x0.device) * x0 + s.to(x0.device) * noise.to(x0.device, x0.dtype)


def fixed_noise(seed: int, image_size: int) -> torch.Tensor:
    """The shared noise [1, 3, S, S] for a workspace seed, drawn on the CPU (the same on every device).

    ddpm-segmentation draws ``torch.randn(1, 3, S, S)`` from a generator seeded with ``seed`` on its
    device; on a CPU run that is exactly this tensor.
    """
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(1, 3, image_size, image_size, generator=generator)


@torch.no_grad()
def extract_features(model: UNetModel, images: torch.Tensor, steps: list[int], blocks: list[int],
                     noise: torch.Tensor, *, noise_schedule: str = "linear", diffusion_steps: int = 1000,
                     rescale_timesteps: bool = False) -> list[torch.Tensor]:
    """Features of ``images`` [B,3,H,W] in [-1, 1]: a step-major list of float32 [B, C, h, w] maps.

    ``noise`` [1 or B, 3, H, W] is the same for every step (and every image when its batch is 1).
    ``rescale_timesteps`` passes t * 1000 / diffusion_steps to the model, as in its training; ddpm-segmentation
    passes t unscaled whatever the flag (SpacedDiffusion._scale_timesteps is the identity): the same for
    the flag's default, False, which its checkpoints use.
    Blocks are taken in ascending index order (duplicates refused), steps in the given order.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B, 3, H, W], got {list(images.shape)}")
    if noise.ndim != 4 or noise.shape[1:] != images.shape[1:] or noise.shape[0] not in (1, images.shape[0]):
        raise ValueError(f"noise must be [1 or {images.shape[0]}, {', '.join(map(str, images.shape[1:]))}],"
                         f" got {list(noise.shape)}")
    if len(set(blocks)) != len(blocks):
        raise ValueError(f"blocks repeat an index: {blocks}")
    abar = alphas_cumprod(noise_schedule, diffusion_steps)
    param = next(model.parameters())
    x0 = images.to(param.device, torch.float32)
    features: list[torch.Tensor] = []
    for t in steps:
        x_t = q_sample(x0, int(t), noise, abar)
        timesteps = torch.full((x0.shape[0],), int(t), device=x0.device)
        if rescale_timesteps:
            timesteps = timesteps.float() * (1000.0 / diffusion_steps)
        features.extend(f.float() for f in model.decoder_features(x_t, timesteps, list(blocks)))
    return features

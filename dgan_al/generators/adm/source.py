"""``DiffusionFeatures``: an ADM UNet as the feature source of photos (ddpm-segmentation's pixel features).

What the interpreter needs of a source, as the ``Generator`` protocol gives it for latents:

    source = DiffusionFeatures.from_checkpoint("ffhq.pt")          # flags in ffhq.pt.json
    source.identity                          # "adm:<sha256[:16]>+<settings digest>|t50,150,250|b5,6,7,8,12|seed0|256px"
    source.geometry                          # LabelGeometry.full(size, size): labels at the UNet's input size
    source.feature_channels, .feature_sizes  # per layer, step-major: [(t0, b0), (t0, b1), ..., (t1, b0), ...]
    maps = source.features(images)           # uint8 [B, size, size, 3] -> float32 [B, C_l, h_l, w_l] per layer

``features`` scales the photo to [-1, 1] as ``arr / 127.5 - 1`` (guided-diffusion's ``image_datasets.py``;
ddpm-segmentation's ``make_transform('ddpm')``, ``ToTensor`` then ``2 x - 1``, gives the same float32 value
for every one of the 256 byte values), noises it to each step with the one shared draw
``fixed_noise(seed, size)`` and reads the chosen decoder blocks at their native resolution
(``extract_features``). The same images give the same features: no global RNG is touched.

Alignment with the label image -- ours against ddpm-segmentation's: **they agree**. ddpm-segmentation's
``collect_features`` upsamples every block output with ``nn.functional.interpolate(feats, size=dim[:2],
mode=upsample_mode)``, ``upsample_mode`` "bilinear" in all its experiment files and ``align_corners`` left at
its default (False), to ``dim[:2]`` = the image resolution, with no crop. Our geometry is
``LabelGeometry.full(size, size)``: canvas = crop = the label image, and the interpreter's rule
(``dgan_al.geometry``, ``interpreter/bilinear.py``) is exactly ``F.interpolate(map, size=canvas,
mode="bilinear", align_corners=False)`` with PyTorch's source-index formula
``max((dst + 0.5) * n_in / n_out - 0.5, 0)``, scale n_in / n_out in float32 as its kernels compute it; no
antialiasing on either side. So a training pixel's feature vector is theirs up to float rounding (we weight
four taps instead of building the upsampled map; ``tests/test_adm_source.py`` checks it against
``F.interpolate`` at every pixel). At inference ours projects each map by the first Linear layer before
upsampling, which is equal by linearity, again up to rounding. The one difference is not in the alignment:
their masks are resized to the resolution with ``cv2.INTER_NEAREST``; here the label image already is
``size`` x ``size`` (``workspace.image_pool.load_pool_image``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dgan_al.files import sha256_file
from dgan_al.generators.adm.checkpoint import ADMCheckpoint, load_adm_checkpoint
from dgan_al.generators.adm.features import DEFAULT_BLOCKS, DEFAULT_STEPS, extract_features, fixed_noise
from dgan_al.generators.adm.unet import UNetModel
from dgan_al.geometry import LabelGeometry


class DiffusionFeatures:
    """Feature maps of photos from an ADM UNet: ``features(images)`` with the interpreter's geometry.

    model       the UNet (its device is where the features are computed and returned)
    checkpoint  what ``load_adm_checkpoint`` read (the diffusion settings and the file that fixes the
                identity); None for a model made in code (tests), whose identity is a digest of its weights
                and the default diffusion settings (linear schedule, 1000 steps, t not rescaled)
    steps       diffusion steps t, in the order the features list them (each in 0 .. diffusion_steps - 1)
    blocks      ``output_blocks`` indices (taken ascending, as ddpm-segmentation's hooks collect them)
    seed        seeds the one shared noise draw (ddpm-segmentation's ``--seed``, 0)
    size        the square input and label size; None = the model's ``image_size`` (what
                ddpm-segmentation feeds); another size must halve as often as the UNet downsamples
    """

    def __init__(self, model: UNetModel, checkpoint: ADMCheckpoint | None = None, *,
                 steps: Sequence[int] = DEFAULT_STEPS, blocks: Sequence[int] = DEFAULT_BLOCKS, seed: int = 0,
                 size: int | None = None):
        self.model = model.eval().requires_grad_(False)
        self.checkpoint = checkpoint
        config = model.config
        self.diffusion_steps = checkpoint.diffusion_steps if checkpoint else 1000
        self.noise_schedule = checkpoint.noise_schedule if checkpoint else "linear"
        self.rescale_timesteps = checkpoint.rescale_timesteps if checkpoint else False
        self.steps = [int(t) for t in steps]
        self.blocks = sorted(int(b) for b in blocks)
        self.seed = int(seed)
        self.size = int(size if size is not None else config.image_size)
        if not self.steps:
            raise ValueError("steps is empty; give at least one diffusion step")
        bad = [t for t in self.steps if not 0 <= t < self.diffusion_steps]
        if bad:
            raise ValueError(f"steps {bad} lie outside the schedule's 0..{self.diffusion_steps - 1}")
        if len(set(self.steps)) != len(self.steps):
            raise ValueError(f"steps repeat a value: {self.steps}")
        n_blocks = len(model.output_blocks)
        if not self.blocks or len(set(self.blocks)) != len(self.blocks) or not (
                0 <= self.blocks[0] and self.blocks[-1] < n_blocks):
            raise ValueError(f"blocks must be distinct indices in 0..{n_blocks - 1}, got {list(blocks)}")
        halvings = len(config.channel_mult) - 1
        if self.size <= 0 or self.size % 2 ** halvings:
            raise ValueError(f"size {self.size} does not halve {halvings} times, as the UNet's levels need")
        self.geometry = LabelGeometry.full(self.size, self.size)
        shapes = model.output_block_shapes(self.size)
        per_step = [shapes[b] for b in self.blocks]
        self.feature_channels = [c for _ in self.steps for c, _ in per_step]
        self.feature_sizes = [(side, side) for _ in self.steps for _, side in per_step]
        self.noise = fixed_noise(self.seed, self.size)  # [1, 3, S, S] on the CPU; moved per call
        self.identity = f"{self._weights_identity()}|t{','.join(map(str, self.steps))}" \
                        f"|b{','.join(map(str, self.blocks))}|seed{self.seed}|{self.size}px"

    @classmethod
    def from_checkpoint(cls, path: str | Path, steps: Sequence[int] = DEFAULT_STEPS,
                        blocks: Sequence[int] = DEFAULT_BLOCKS, seed: int = 0, *, size: int | None = None,
                        device: str | torch.device = "cpu") -> "DiffusionFeatures":
        """The source of a guided-diffusion ``.pt`` (flags in ``<path>.json``; ``load_adm_checkpoint``)."""
        checkpoint, model = load_adm_checkpoint(path, device=device)
        return cls(model, checkpoint, steps=steps, blocks=blocks, seed=seed, size=size)

    def _weights_identity(self) -> str:
        """"adm:<16 hex of the file's sha256>+<8 hex of the settings read>" or, without a checkpoint,
        "adm-unsaved:<16 hex of the weights and config>". The settings matter: the JSON's heads, schedule
        and timestep scaling change the features of the same tensors."""
        if self.checkpoint is not None:
            settings = asdict(self.checkpoint)
            settings.pop("path")
            digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
            return f"adm:{sha256_file(self.checkpoint.path)[:16]}+{digest[:8]}"
        h = hashlib.sha256(json.dumps(asdict(self.model.config), sort_keys=True, default=str).encode())
        for name, tensor in self.model.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return f"adm-unsaved:{h.hexdigest()[:16]}"

    @property
    def resolution(self) -> tuple[int, int]:
        """(H, W) of the images ``features`` takes (== geometry.size)."""
        return self.geometry.size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def features(self, images: torch.Tensor | np.ndarray) -> list[torch.Tensor]:
        """uint8 images [B, size, size, 3] -> step-major float32 [B, C_l, h_l, w_l] maps (``feature_sizes``),
        on the model's device."""
        x = torch.as_tensor(images)
        if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != (self.size, self.size, 3):
            raise ValueError(f"images must be uint8 [B, {self.size}, {self.size}, 3], "
                             f"got {x.dtype} {list(x.shape)}")
        x0 = x.to(self.device).permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1  # [B, 3, S, S] in [-1, 1]
        return extract_features(self.model, x0, self.steps, self.blocks, self.noise,
                                noise_schedule=self.noise_schedule, diffusion_steps=self.diffusion_steps,
                                rescale_timesteps=self.rescale_timesteps)

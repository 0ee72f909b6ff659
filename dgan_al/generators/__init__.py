"""Where images and per-layer feature maps come from.

``load_generator(spec)`` is the one entry point: ``spec`` is ``toy-faces`` (the built-in world) or the
path of a checkpoint file, whose format is detected from its content: StyleGAN2 (rosinality .pt, NVIDIA
.pkl) or datasetGAN_release's StyleGAN1 ``*.for_g_all.pt`` (its average latent is read from
``<checkpoint>.avg_latent.npy`` or ``avg_latent_stylegan1.npy`` beside the file).
"""

from __future__ import annotations

from pathlib import Path

import torch

from dgan_al.device import resolve_device
from dgan_al.errors import UserError, quote
from dgan_al.geometry import LabelGeometry
from dgan_al.generators.protocol import Generator, OracleGenerator, Synthesis, sample_latents

BUILTIN = ("toy-faces",)


def load_generator(spec: str, *, truncation_psi: float = 1.0, label_resolution: int | None = None,
                   crop: tuple[int, int, int, int] | None = None, device: str | torch.device = "cpu") -> Generator:
    """The generator named by ``spec``: ``toy-faces`` or a checkpoint path (rosinality .pt / NVIDIA .pkl /
    datasetGAN StyleGAN1 .pt)."""
    device = resolve_device(device)
    if spec == "toy-faces":
        if label_resolution is not None or crop is not None or truncation_psi != 1.0:
            raise UserError("toy-faces takes no crop, label resolution or truncation (it always runs at psi = 1)")
        from dgan_al.generators.toy_faces import load_toy_faces

        return load_toy_faces(device=device)
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(f"unknown generator {quote(spec)}: not a built-in ({', '.join(BUILTIN)}) and no such file",
                        fix="give toy-faces or the path of a StyleGAN2 (.pt / .pkl) or StyleGAN1 (.for_g_all.pt) "
                        "checkpoint")
    from dgan_al.generators.checkpoints import load_checkpoint
    from dgan_al.generators.stylegan2 import OutputWindow

    window = OutputWindow(label_resolution=label_resolution, crop=crop)
    try:
        return load_checkpoint(path, truncation_psi=truncation_psi, window=window, device=device)
    except ValueError as err:  # crop / label resolution that does not fit this generator
        raise UserError(str(err), path=path, fix="check the crop and the label resolution") from None


__all__ = ["Generator", "LabelGeometry", "OracleGenerator", "Synthesis", "load_generator", "sample_latents"]

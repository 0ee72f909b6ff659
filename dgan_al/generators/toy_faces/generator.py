"""The toy-faces generator: the distilled StyleGAN2 with its renderer as an exact oracle.

Latents are z vectors (32-d). It always runs at truncation psi = 1, so that G(z) and the renderer's
scene for z stay the same scene. Its first image to annotate is, as for every StyleGAN2, the sample
(seed 0) whose w lies nearest the average w: a latent like those it was trained on (z = 0, which the
mapping network never sees, is no such latent). ``oracle_mask`` gives the visible truth by default
(``visible.py``: the parts G does not draw are left out), the renderer's own mask on request.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from dgan_al.errors import UserError
from dgan_al.generators.stylegan2 import StyleGAN2, StyleGAN2Config, StyleGAN2Generator

WEIGHTS_FILE = "toy_faces.pt"


class ToyFacesGenerator(StyleGAN2Generator):
    """``Generator`` protocol plus ``oracle_mask``: the exact part mask of any latent."""

    def __init__(self, model: StyleGAN2, identity: str, info: dict | None = None, device="cpu"):
        super().__init__(model, identity=identity, truncation_psi=1.0, device=device, source="built-in toy-faces")
        self.info = info or {}

    @property
    def w_plus_shape(self) -> None:
        """z only: the scene, and so the oracle's truth, is a function of z."""
        return None

    @property
    def classes(self) -> list[str]:
        from dgan_al.generators.toy_faces.classes import CLASSES

        return list(CLASSES)

    def oracle_mask(self, latents: torch.Tensor, truth: str = "visible", images: np.ndarray | None = None) -> np.ndarray:
        """Ground-truth class masks of the scenes, uint8 [B,128,128] (class ids as in ``classes``).

        truth: "visible" (what G(z) shows; ``images``, G's uint8 [B,128,128,3], saves synthesising them
        again) or "renderer" (the scene's exact mask, parts G does not draw included).
        """
        from dgan_al.generators.toy_faces.render import render_latents
        from dgan_al.generators.toy_faces.visible import TRUTHS, visible_truth

        if truth not in TRUTHS:
            raise ValueError(f"truth must be one of {TRUTHS}, got {truth!r}")
        z = np.asarray(torch.as_tensor(latents, dtype=torch.float32).cpu())
        if truth == "renderer":
            return render_latents(z)[1]
        if images is None:
            images = self.synthesize(torch.from_numpy(z)).images.numpy()
        return visible_truth(z, images).masks

    @property
    def keypoints(self) -> list[str]:
        """The keypoint names of toy-faces (``keypoints.KEYPOINTS``; left/right are the subject's)."""
        from dgan_al.generators.toy_faces.keypoints import KEYPOINTS

        return list(KEYPOINTS)

    def oracle_keypoints(self, latents: torch.Tensor, truth: str = "visible",
                         images: np.ndarray | None = None) -> np.ndarray:
        """Ground-truth keypoints of the scenes, float [B, K, 3] (x, y, v) in label pixels (pixel centres at
        integers), K as ``keypoints``; v: 2 visible, 1 occluded by a rare part (glasses, hat, beard,
        earring) G draws, 0 hidden by the head itself (``keypoints.py``). truth as ``oracle_mask``."""
        from dgan_al.generators.toy_faces.keypoints import latent_keypoints

        z = np.asarray(torch.as_tensor(latents, dtype=torch.float32).cpu())
        if truth == "visible" and images is None:
            images = self.synthesize(torch.from_numpy(z)).images.numpy()
        return latent_keypoints(z, truth, images)

    def render(self, latents: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The renderer's own (crisp) image and mask of each scene: uint8 [B,128,128,3], [B,128,128]."""
        from dgan_al.generators.toy_faces.render import render_latents

        return render_latents(np.asarray(torch.as_tensor(latents, dtype=torch.float32).cpu()))

    def describe(self) -> dict:
        from dgan_al.generators.toy_faces.scene import WORLD_VERSION

        out = super().describe()
        out["classes"] = ", ".join(self.classes)
        if "held_out_psnr_db" in self.info:
            out["PSNR vs renderer"] = f"{self.info['held_out_psnr_db']:.2f} dB (200 held-out latents)"
        world = int(self.info.get("world", 1))
        out["world"] = (f"version {world}" if world == WORLD_VERSION else
                        f"version {world}, distilled from an older renderer map (this one is {WORLD_VERSION}): "
                        "re-distill with `dgan-al toy distill`")
        return out


def weights_path() -> Path:
    return Path(str(resources.files("dgan_al.generators.toy_faces") / WEIGHTS_FILE))


def read_weights(path: Path) -> dict:
    if not path.is_file():
        if path == weights_path():
            raise UserError("the toy-faces weights are missing from the installed package", path=path,
                            fix="reinstall dgan-al, or rebuild them with `dgan-al toy distill`")
        raise UserError("no toy-faces weights file here", path=path,
                        fix="give the toy_faces.pt that `dgan-al toy distill` wrote")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt, or a pickle that needs code to load
        raise UserError(f"not a readable toy-faces weights file ({type(exc).__name__})", path=path,
                        fix="rebuild it with `dgan-al toy distill`") from exc
    if not isinstance(payload, dict) or payload.get("format") != "dgan-al toy-faces generator":
        raise UserError("not a toy-faces weights file", path=path, fix="rebuild it with `dgan-al toy distill`")
    return payload


def load_toy_faces(device: str | torch.device = "cpu", path: Path | None = None) -> ToyFacesGenerator:
    """The built-in generator, from the weights shipped inside the package."""
    path = path or weights_path()
    payload = read_weights(path)
    config = StyleGAN2Config(**{k: (tuple(v) if k == "channels" else v) for k, v in payload["config"].items()})
    model = StyleGAN2(config)
    model.load_state_dict(payload["state_dict"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return ToyFacesGenerator(model, identity=f"toy-faces@{digest}", info=payload.get("info"), device=device)

"""The training cache: native-resolution feature maps of an annotated image, stored as float16.

Training needs the features of the annotated images every round; regenerating them costs a generator
pass per image, and keeping per-pixel features (the reference's way) costs H x W x D x 6 bytes per
image. The native maps are small beside that (sum of C_l x h_l x w_l, x 2 bytes): 62 MB per image for
a config-F generator at 256px (the reference design: 65536 x 5888 x 6 bytes = 2.3 GB), 129 MB at
512px. ``PixelEnsemble.fit`` reads items one at a time, so a generator over ``load_feature_maps`` keeps
only one image's maps in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from dgan_al.errors import UserError
from dgan_al.files import atomic_torch_save


def feature_cache_bytes(feature_channels: Sequence[int], feature_sizes: Sequence[tuple[int, int]]) -> int:
    """Bytes of one image's maps in float16 (without the file's small overhead)."""
    return sum(2 * c * h * w for c, (h, w) in zip(feature_channels, feature_sizes))


def save_feature_maps(path: str | Path, maps: Sequence[torch.Tensor]) -> None:
    """Write one image's maps ([C_l, h_l, w_l] each, or [1, C_l, h_l, w_l]) as float16, atomically."""
    path = Path(path)
    tensors = [(m[0] if m.ndim == 4 else m).detach().to("cpu", torch.float16).contiguous() for m in maps]
    atomic_torch_save(path, {"feature_maps": tensors})


def load_feature_maps(path: str | Path) -> list[torch.Tensor]:
    """Read maps written by ``save_feature_maps``: float16 [C_l, h_l, w_l] per layer."""
    path = Path(path)
    if not path.is_file():
        raise UserError("cached features not found", path=path, fix="run the command again to regenerate them")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "feature_maps" not in payload:
        raise UserError("not a dgan-al feature cache file", path=path, fix="delete it; it will be regenerated")
    return list(payload["feature_maps"])

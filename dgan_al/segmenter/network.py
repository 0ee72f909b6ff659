"""The downstream segmentation networks: a compact U-Net written here, or torchvision's DeepLab-V3.

Every model that ``build_segmenter`` returns is a ``Segmenter`` and has one contract:

    forward(images float32 [B, 3, H, W], values in [0, 1]) -> logits float32 [B, K, H, W]

for any H, W >= 1. The ``Segmenter`` normalises its input itself (ImageNet channel mean / std, the
convention of torchvision's backbones), so a trained model needs nothing besides its weights, and the
trainer and the predictor feed it the same thing: ``uint8 / 255``.

The compact network (``CompactUNet``) is a small U-Net (Ronneberger et al. 2015) with BatchNorm:

    level 0  (H,    W)     ConvBlock(3 -> w)          -------------------- skip --> concat -> ConvBlock(2w -> w) -> 1x1 conv -> K
    level 1  (H/2,  W/2)   maxpool, ConvBlock(w -> 2w)   ---- skip --> concat -> ConvBlock(4w -> 2w) -> up
    ...
    level d  (H/2^d, ...)  maxpool, ConvBlock(2^(d-1)w -> 2^d w)  (the bottleneck) -> up

where ConvBlock = two (3x3 conv, BatchNorm, ReLU) and "up" is a bilinear x2 upsample followed by a 1x1
conv that halves the channels. Inputs whose size is not a multiple of 2^d are padded on the bottom and
right (edge pixels repeated) and the logits are cropped back, so any size works.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dgan_al.errors import UserError

SEGMENTER_NAMES: tuple[str, ...] = ("compact", "deeplabv3")

# ImageNet channel statistics, for images in [0, 1] (torchvision's backbones expect these).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


@dataclass
class CompactUNetConfig:
    """Shape of the compact U-Net. The defaults are sized to train 1000 images of 128 px on 2 CPU cores
    in minutes (see the report in ``benchmarks/segmenter_speed.py``)."""

    n_classes: int
    width: int = 16  # channels at full resolution; doubled at every level down
    depth: int = 4  # number of x2 downsamplings; inputs are padded to a multiple of 2**depth


class ConvBlock(nn.Module):
    """Two (3x3 conv -> BatchNorm -> ReLU). ``[B, C_in, H, W] -> [B, C_out, H, W]``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Up(nn.Module):
    """Bilinear x2 upsample, 1x1 conv to halve the channels, concat the skip, ConvBlock.

    ``x [B, 2C, h, w], skip [B, C, 2h, 2w] -> [B, C, 2h, 2w]``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.block = ConvBlock(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.reduce(x)
        return self.block(torch.cat([skip, x], dim=1))


class CompactUNet(nn.Module):
    """``forward(x float [B, 3, H, W], already normalised) -> logits [B, K, H, W]`` for any H, W."""

    def __init__(self, config: CompactUNetConfig):
        super().__init__()
        self.config = config
        widths = [config.width * 2**level for level in range(config.depth + 1)]  # e.g. 16, 32, 64, 128, 256
        self.stride = 2**config.depth
        self.down = nn.ModuleList([ConvBlock(3, widths[0])])
        self.down.extend(ConvBlock(widths[i - 1], widths[i]) for i in range(1, len(widths)))
        self.up = nn.ModuleList(Up(widths[i], widths[i - 1]) for i in range(len(widths) - 1, 0, -1))
        self.head = nn.Conv2d(widths[0], config.n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_bottom, pad_right = -height % self.stride, -width % self.stride
        if pad_bottom or pad_right:
            x = F.pad(x, (0, pad_right, 0, pad_bottom), mode="replicate")
        skips = []
        for level, block in enumerate(self.down):
            if level > 0:
                x = F.max_pool2d(x, 2)  # [B, C, h/2, w/2]
            x = block(x)
            skips.append(x)
        x = skips.pop()  # the bottleneck, [B, C_d, H/2^d, W/2^d]
        for up in self.up:
            x = up(x, skips.pop())
        logits = self.head(x)  # [B, K, H_padded, W_padded]
        return logits[..., :height, :width]


class DeepLabV3Logits(nn.Module):
    """torchvision's ``deeplabv3_resnet50`` (no pretrained weights), returning its ``"out"`` logits."""

    def __init__(self, n_classes: int):
        super().__init__()
        try:
            from torchvision.models.segmentation import deeplabv3_resnet50
        except ImportError as error:
            raise UserError(
                f"--model deeplabv3 needs torchvision, which is not importable ({error})",
                fix=f"pip install torchvision built for your torch {torch.__version__}, or use --model compact",
            ) from None
        self.net = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=n_classes, aux_loss=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]  # [B, K, H, W]: torchvision upsamples to the input size itself


class Segmenter(nn.Module):
    """A segmentation network behind one contract: ``[0, 1]`` images in, logits at their size out.

    ``name`` and ``config`` record how it was built (``build_segmenter(**segmenter.build_args)``
    rebuilds the same architecture, so ``state_dict`` is all there is to save).
    """

    def __init__(self, name: str, n_classes: int, net: nn.Module, config: dict):
        super().__init__()
        self.name = name
        self.n_classes = n_classes
        self.config = config
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def build_args(self) -> dict:
        return {"name": self.name, "n_classes": self.n_classes, **self.config}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images float [B, 3, H, W] in [0, 1] -> logits float [B, K, H, W]."""
        return self.net((images - self.mean) / self.std)


def build_segmenter(name: str = "compact", n_classes: int = 2, **options) -> Segmenter:
    """A freshly initialised segmenter (the current torch RNG draws its weights).

    ``name``: ``"compact"`` (``CompactUNet``; ``options`` are ``CompactUNetConfig`` fields, e.g.
    ``width=16, depth=4``) or ``"deeplabv3"`` (torchvision's ``deeplabv3_resnet50``, never downloads
    anything; ``UserError`` if torchvision is not installed).
    """
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    if name == "compact":
        config = CompactUNetConfig(n_classes=n_classes, **options)
        kept = {k: v for k, v in asdict(config).items() if k != "n_classes"}
        return Segmenter(name, n_classes, CompactUNet(config), kept)
    if name == "deeplabv3":
        if options:
            raise ValueError(f"deeplabv3 takes no options, got {sorted(options)}")
        return Segmenter(name, n_classes, DeepLabV3Logits(n_classes), {})
    raise UserError(f"unknown segmentation model {name!r}", fix=f"use one of: {', '.join(SEGMENTER_NAMES)}")

"""The guided-diffusion (ADM) denoising UNet, written here so that its state dict matches upstream's.

Dhariwal & Nichol's ``UNetModel`` (openai/guided-diffusion ``unet.py``), unconditional, 2-D, fp32:

    x [B,3,H,W], t [B] -> time_embed(sinusoid(t)) = emb [B,4*C]
    input_blocks:  conv 3->C*m0, then per level l (ds = 2**l): num_res_blocks x (ResBlock [+ attention])
                   and, except at the last level, a downsampler (strided conv, or a ResBlock with down=True)
    middle_block:  ResBlock, attention, ResBlock
    output_blocks: per level from deepest: (num_res_blocks + 1) x (cat skip; ResBlock [+ attention]),
                   the last of each level but level 0 ends with an upsampler (nearest x2 + conv, or up-ResBlock)
    out:           GroupNorm, SiLU, conv C*m0 -> 3 (6 with learn_sigma)

Module and attribute names (``in_layers.2``, ``emb_layers.1``, ``out_layers.3``, ``op``, ``conv``, ``qkv``,
``proj_out``, ``skip_connection``) equal upstream's so a checkpoint loads strictly. Class-conditional
models (``label_emb``) are not supported: features are read without a class label. Dropout and fp16 are
training/speed options upstream; here inference always runs in fp32 without dropout.
``decoder_features`` returns chosen ``output_blocks`` outputs and stops after the last one needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

GROUPS = 32  # upstream's normalization(): GroupNorm32(32, channels), eps 1e-5, computed in fp32

DEFAULT_CHANNEL_MULT = {  # create_model's channel_mult when it is "" (by image_size)
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
}


@dataclass(frozen=True, kw_only=True)
class UNetConfig:
    """The architecture, in guided-diffusion's argument names (``create_model``).

    ``attention_resolutions`` are image resolutions in pixels, as upstream's flag (``32,16,8``); the
    UNet attends at downsample rate ``image_size // r``. ``num_head_channels`` (-1: unset) overrides
    ``num_heads``; ``num_heads_upsample`` (-1: ``num_heads``) is the decoder's head count.
    """

    image_size: int
    num_channels: int
    num_res_blocks: int
    channel_mult: tuple[float, ...]
    attention_resolutions: tuple[int, ...]
    learn_sigma: bool = False
    num_heads: int = 1
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    use_new_attention_order: bool = False

    @property
    def attention_ds(self) -> frozenset[int]:
        """Downsample rates with attention (upstream: ``image_size // int(res)``)."""
        return frozenset(self.image_size // int(r) for r in self.attention_resolutions)

    @property
    def out_channels(self) -> int:
        return 6 if self.learn_sigma else 3

    def level_channels(self, level: int) -> int:
        return int(self.channel_mult[level] * self.num_channels)


def channel_mult_for(image_size: int) -> tuple[float, ...] | None:
    """``create_model``'s default ``channel_mult`` for ``image_size`` (None where upstream has none)."""
    return DEFAULT_CHANNEL_MULT.get(image_size)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [N, dim] of timesteps [N]: cos(t f_i) then sin(t f_i), f_i = P^(-i/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = timesteps[:, None].float() * freqs.to(timesteps.device)[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def norm(channels: int) -> nn.GroupNorm:
    if channels % GROUPS:
        raise ValueError(f"{channels} channels cannot be split into {GROUPS} groups")
    return nn.GroupNorm(GROUPS, channels)


class Upsample(nn.Module):
    """Nearest x2, then a 3x3 conv (``conv``) when ``use_conv`` (upstream's conv_resample, always on)."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        if use_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.use_conv = use_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """A stride-2 3x3 conv (``op``) when ``use_conv``, else 2x2 average pooling (no parameters)."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, + timestep (add, or FiLM scale/shift after the second norm), GroupNorm-SiLU-conv,
    + skip (identity, or 1x1 conv when channels change). ``up``/``down`` resample inside, before in_conv."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None, *,
                 use_scale_shift_norm: bool = False, up: bool = False, down: bool = False):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels))
        # index 2 is upstream's Dropout: identity at inference, kept so the conv stays at out_layers.3
        self.out_layers = nn.Sequential(norm(out_channels), nn.SiLU(), nn.Identity(),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb)[:, :, None, None]               # [B or 1, C or 2C, 1, 1]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over all positions: x + proj_out(attention(qkv(norm(x)))), 1-D convs on [B,C,HW].

    The qkv channel layout differs by order: legacy (``QKVAttentionLegacy``) splits heads first, each
    head's slice holding [q|k|v]; the new order (``QKVAttention``) splits [q|k|v] first, then heads.
    """

    def __init__(self, channels: int, num_heads: int, num_head_channels: int, new_order: bool):
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"{channels} channels are not divisible by num_head_channels {num_head_channels}")
            self.num_heads = channels // num_head_channels
        if channels % self.num_heads:
            raise ValueError(f"{channels} channels are not divisible into {self.num_heads} heads")
        self.new_order = new_order
        self.norm = norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)                                          # [B, C, T]
        qkv = self.qkv(self.norm(x))                                     # [B, 3C, T]
        heads, ch, length = self.num_heads, c // self.num_heads, x.shape[-1]
        if self.new_order:
            q, k, v = (part.reshape(b * heads, ch, length) for part in qkv.chunk(3, dim=1))
        else:
            q, k, v = qkv.reshape(b * heads, 3 * ch, length).split(ch, dim=1)
        # softmax(q^T k / sqrt(ch)) v, as upstream's einsums with q and k each scaled by ch^-1/4
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        h = self.proj_out(a.transpose(1, 2).reshape(b, c, length))
        return (x + h).reshape(b, c, *spatial)


class EmbedSequential(nn.Sequential):
    """Children run in turn; ResBlocks also get the timestep embedding (upstream's TimestepEmbedSequential)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNetModel(nn.Module):
    """guided-diffusion's UNetModel (unconditional, 3 input channels); see the module docstring."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c = config
        mc, emb_dim, ds_attn = c.num_channels, 4 * c.num_channels, c.attention_ds
        heads_up = c.num_heads if c.num_heads_upsample == -1 else c.num_heads_upsample

        def res(cin: int, cout: int, **kw) -> ResBlock:
            return ResBlock(cin, emb_dim, cout, use_scale_shift_norm=c.use_scale_shift_norm, **kw)

        def attn(ch: int, heads: int) -> AttentionBlock:
            return AttentionBlock(ch, heads, c.num_head_channels, c.use_new_attention_order)

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        ch = c.level_channels(0)
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(3, ch, 3, padding=1))])
        skip_chans, ds = [ch], 1
        for level in range(len(c.channel_mult)):
            for _ in range(c.num_res_blocks):
                layers: list[nn.Module] = [res(ch, c.level_channels(level))]
                ch = c.level_channels(level)
                if ds in ds_attn:
                    layers.append(attn(ch, c.num_heads))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(c.channel_mult) - 1:
                down = res(ch, ch, down=True) if c.resblock_updown else Downsample(ch, True)
                self.input_blocks.append(EmbedSequential(down))
                skip_chans.append(ch)
                ds *= 2
        self.middle_block = EmbedSequential(res(ch, ch), attn(ch, c.num_heads), res(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level in reversed(range(len(c.channel_mult))):
            for i in range(c.num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), c.level_channels(level))]
                ch = c.level_channels(level)
                if ds in ds_attn:
                    layers.append(attn(ch, heads_up))
                if level and i == c.num_res_blocks:
                    layers.append(res(ch, ch, up=True) if c.resblock_updown else Upsample(ch, True))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))
        self.out = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(ch, c.out_channels, 3, padding=1))

    def output_block_shapes(self, image_size: int | None = None) -> list[tuple[int, int]]:
        """(channels, side) of each output block's output for a square input of ``image_size``."""
        c, size = self.config, image_size or self.config.image_size
        shapes, side = [], size >> (len(c.channel_mult) - 1)
        for level in reversed(range(len(c.channel_mult))):
            for i in range(c.num_res_blocks + 1):
                if level and i == c.num_res_blocks:
                    side *= 2
                shapes.append((c.level_channels(level), side))
        return shapes

    def _embed(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.time_embed(timestep_embedding(timesteps, self.config.num_channels))

    def _encode(self, x: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The encoder and the middle block: (the middle block's output, every input block's output in order,
        the skips the decoder pops from the end)."""
        hs = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        return self.middle_block(h, emb), hs

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The model output [B, 3 or 6, H, W] (eps, then the variance interpolation with learn_sigma)."""
        emb = self._embed(timesteps)
        h, hs = self._encode(x, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)

    def decoder_features(self, x: torch.Tensor, timesteps: torch.Tensor, blocks: list[int]) -> list[torch.Tensor]:
        """Outputs of ``output_blocks[i]`` for i in sorted ``blocks``, each [B, C_i, h_i, w_i].

        Runs the encoder, the middle and the decoder only as far as the largest index in ``blocks``.
        """
        wanted = sorted(set(blocks))
        if not wanted or wanted[0] < 0 or wanted[-1] >= len(self.output_blocks):
            raise ValueError(f"blocks must lie in 0..{len(self.output_blocks) - 1}, got {blocks}")
        emb = self._embed(timesteps)
        h, hs = self._encode(x, emb)
        found = []
        for index, block in enumerate(self.output_blocks[: wanted[-1] + 1]):
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if index in wanted:
                found.append(h)
        return found

"""guided-diffusion's checkpoint layout for one tiny UNet, derived by hand from upstream's ``UNetModel.__init__``
(32 px, num_channels 32, num_res_blocks 1, channel_mult 1,2, attention at 16 px = ds 2), not from our module;
checkpoints written with it carry upstream's names with random tensors, and flags in upstream's argument names."""

from __future__ import annotations

import json

import torch

EMB = 4 * 32  # time_embed_dim = 4 * model_channels


def resblock(prefix: str, cin: int, cout: int, scale_shift: bool) -> dict[str, tuple[int, ...]]:
    """Upstream ResBlock: in_layers = [GroupNorm, SiLU, conv], emb_layers = [SiLU, linear],
    out_layers = [GroupNorm, SiLU, Dropout, conv], skip_connection a 1x1 conv when cin != cout."""
    keys = {
        f"{prefix}.in_layers.0.weight": (cin,), f"{prefix}.in_layers.0.bias": (cin,),
        f"{prefix}.in_layers.2.weight": (cout, cin, 3, 3), f"{prefix}.in_layers.2.bias": (cout,),
        f"{prefix}.emb_layers.1.weight": (2 * cout if scale_shift else cout, EMB),
        f"{prefix}.emb_layers.1.bias": (2 * cout if scale_shift else cout,),
        f"{prefix}.out_layers.0.weight": (cout,), f"{prefix}.out_layers.0.bias": (cout,),
        f"{prefix}.out_layers.3.weight": (cout, cout, 3, 3), f"{prefix}.out_layers.3.bias": (cout,),
    }
    if cin != cout:
        keys |= {f"{prefix}.skip_connection.weight": (cout, cin, 1, 1), f"{prefix}.skip_connection.bias": (cout,)}
    return keys


def attention(prefix: str, ch: int) -> dict[str, tuple[int, ...]]:
    """Upstream AttentionBlock: norm, qkv = conv1d(ch, 3ch, 1), proj_out = conv1d(ch, ch, 1)."""
    return {f"{prefix}.norm.weight": (ch,), f"{prefix}.norm.bias": (ch,),
            f"{prefix}.qkv.weight": (3 * ch, ch, 1), f"{prefix}.qkv.bias": (3 * ch,),
            f"{prefix}.proj_out.weight": (ch, ch, 1), f"{prefix}.proj_out.bias": (ch,)}


def upstream_layout(*, scale_shift=True, updown=False, learn_sigma=False) -> dict[str, tuple[int, ...]]:
    """Keys and shapes guided-diffusion writes for the tiny config (comments: upstream's loop state)."""
    s = scale_shift
    keys = {"time_embed.0.weight": (EMB, 32), "time_embed.0.bias": (EMB,),
            "time_embed.2.weight": (EMB, EMB), "time_embed.2.bias": (EMB,),
            "input_blocks.0.0.weight": (32, 3, 3, 3), "input_blocks.0.0.bias": (32,)}
    keys |= resblock("input_blocks.1.0", 32, 32, s)                     # level 0, ds 1: no attention
    if updown:                                                           # downsampler, ds 1 -> 2
        keys |= resblock("input_blocks.2.0", 32, 32, s)
    else:
        keys |= {"input_blocks.2.0.op.weight": (32, 32, 3, 3), "input_blocks.2.0.op.bias": (32,)}
    keys |= resblock("input_blocks.3.0", 32, 64, s) | attention("input_blocks.3.1", 64)  # level 1, ds 2
    # input_block_chans = [32, 32, 32, 64]
    keys |= resblock("middle_block.0", 64, 64, s) | attention("middle_block.1", 64)
    keys |= resblock("middle_block.2", 64, 64, s)
    keys |= resblock("output_blocks.0.0", 64 + 64, 64, s) | attention("output_blocks.0.1", 64)   # level 1, i 0
    keys |= resblock("output_blocks.1.0", 64 + 32, 64, s) | attention("output_blocks.1.1", 64)   # level 1, i 1
    if updown:                                                           # upsampler, ds 2 -> 1
        keys |= resblock("output_blocks.1.2", 64, 64, s)
    else:
        keys |= {"output_blocks.1.2.conv.weight": (64, 64, 3, 3), "output_blocks.1.2.conv.bias": (64,)}
    keys |= resblock("output_blocks.2.0", 64 + 32, 32, s)               # level 0, i 0
    keys |= resblock("output_blocks.3.0", 32 + 32, 32, s)               # level 0, i 1
    out = 6 if learn_sigma else 3
    keys |= {"out.0.weight": (32,), "out.0.bias": (32,), "out.2.weight": (out, 32, 3, 3), "out.2.bias": (out,)}
    return keys


FLAGS = {"image_size": 32, "num_channels": 32, "num_res_blocks": 1, "channel_mult": "1,2",
         "attention_resolutions": "16", "num_head_channels": 32, "learn_sigma": False,
         "use_scale_shift_norm": True, "resblock_updown": False, "diffusion_steps": 1000, "noise_schedule": "linear"}


def write_checkpoint(tmp_path, state, flags=FLAGS, name="adm.pt"):
    path = tmp_path / name
    torch.save(state, path)
    if flags is not None:
        (tmp_path / f"{name}.json").write_text(json.dumps(flags))
    return path


def random_state(**layout) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {k: torch.randn(shape, generator=gen) * 0.1 for k, shape in upstream_layout(**layout).items()}

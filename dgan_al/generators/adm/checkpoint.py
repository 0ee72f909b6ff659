"""Read a guided-diffusion (ADM) UNet checkpoint: a state-dict ``.pt`` plus ``<checkpoint>.json`` beside it.

The ``.pt`` is read by ``torch.load(weights_only=True)`` (no code from the file runs). The tensors fix
num_channels (``time_embed.0.weight`` [4C, C]), learn_sigma (``out.2.weight``: 3 or 6 outputs),
num_res_blocks (the first decoder block holding an upsampler), channel_mult (each level's first
ResBlock width / C), the levels with attention (``*.1.qkv.weight``), use_scale_shift_norm
(``emb_layers.1`` twice the block width) and resblock_updown (``op`` conv vs a ResBlock downsampler).

The JSON uses guided-diffusion's own argument names (``model_and_diffusion_defaults``), so MODEL_FLAGS
and DIFFUSION_FLAGS copy over; values may be JSON types or upstream's command-line strings ("True",
"32,16,8"). ``image_size`` is required, and ``num_heads`` or ``num_head_channels``: head counts leave no
trace in the tensors (the middle block always attends). Other keys default as upstream's.
A JSON value the tensors contradict is refused with its key named; an unknown key, a class-conditional
or super-resolution model, a non-empty ``timestep_respacing`` and any file that is not an ADM UNet
state dict are refused in one line.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dgan_al.errors import UserError, quote
from dgan_al.generators.adm.features import SCHEDULES
from dgan_al.generators.adm.unet import UNetConfig, UNetModel, channel_mult_for

FLAGS_FIX = "write guided-diffusion's MODEL_FLAGS and DIFFUSION_FLAGS there as JSON, e.g. {\"image_size\": 256, ...}"

# model_and_diffusion_defaults(), by kind: what a key missing from the JSON means upstream
DEFAULTS: dict[str, Any] = dict(
    image_size=64, num_channels=128, num_res_blocks=2, num_heads=4, num_heads_upsample=-1,
    num_head_channels=-1, attention_resolutions="16,8", channel_mult="", dropout=0.0, class_cond=False,
    use_checkpoint=False, use_scale_shift_norm=True, resblock_updown=False, use_fp16=False,
    use_new_attention_order=False, learn_sigma=False, diffusion_steps=1000, noise_schedule="linear",
    timestep_respacing="", use_kl=False, predict_xstart=False, rescale_timesteps=False,
    rescale_learned_sigmas=False,
)
BOOL_KEYS = {k for k, v in DEFAULTS.items() if isinstance(v, bool)}
INT_KEYS = {"image_size", "num_channels", "num_res_blocks", "num_heads", "num_heads_upsample",
            "num_head_channels", "diffusion_steps"}


@dataclass(frozen=True, kw_only=True)
class ADMCheckpoint:
    """What was read: the architecture plus the diffusion settings feature extraction needs."""

    path: Path
    unet: UNetConfig
    diffusion_steps: int
    noise_schedule: str
    rescale_timesteps: bool


def load_adm_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[ADMCheckpoint, UNetModel]:
    """Read ``path`` and ``<path>.json``; the UNet in eval mode with its weights loaded strictly."""
    path = Path(path)
    state = read_state_dict(path)
    inferred = infer_architecture(state, path)
    flags = read_flags(Path(f"{path}.json"))
    config = merge(inferred, flags, path)
    try:
        model = UNetModel(config.unet)
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (ValueError, RuntimeError) as err:
        raise UserError(f"the tensors do not form one guided-diffusion UNet ({str(err).splitlines()[0][:160]})",
                        path=path, fix="is the file complete and unmodified?") from None
    if missing or unexpected:
        names = ", ".join([*(f"missing {k}" for k in missing[:2]), *(f"unexpected {k}" for k in unexpected[:2])])
        raise UserError(f"the tensors do not form one guided-diffusion UNet ({names})", path=path,
                        fix="is the file complete and unmodified?")
    return config, model.to(device).eval()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors; a clear refusal for anything that is not an ADM UNet state dict."""
    if not path.is_file():
        raise UserError("no such checkpoint file", path=path)
    with path.open("rb") as file:
        head = file.read(2)
    if not (zipfile.is_zipfile(path) or head[:1] == b"\x80"):  # torch's zip format, or a legacy pickle
        raise UserError("is not a PyTorch checkpoint", path=path, fix="give the .pt of a guided-diffusion model")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f" such as {found.group(1)}" if found else ""
        raise UserError(f"holds Python objects beyond tensors{what}, refused", path=path,
                        fix="save the UNet's state_dict() alone") from None
    except Exception as err:  # noqa: BLE001 - any failure to parse means: not a torch file
        raise UserError(f"is not a PyTorch checkpoint ({type(err).__name__})", path=path,
                        fix="give the .pt of a guided-diffusion model") from None
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        raise UserError(f"is not a state dict (a {type(obj).__name__})", path=path,
                        fix="give the .pt of a guided-diffusion model")
    if "g_ema" in obj or any(k.startswith(("g_ema.", "style.", "synthesis.", "mapping.")) for k in obj):
        raise UserError("is a StyleGAN checkpoint, not a guided-diffusion UNet", path=path,
                        fix="load it as a StyleGAN generator")
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        nested = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)][:3]
        raise UserError(f"is not a bare state dict (entries {', '.join(map(quote, nested))} are not tensors)",
                        path=path, fix="save the UNet's state_dict() alone")
    for key in ("time_embed.0.weight", "input_blocks.0.0.weight", "out.2.weight"):
        if key not in obj:
            raise UserError(f"is not a guided-diffusion UNet state dict (no {key}; first key {quote(next(iter(obj)))})",
                            path=path, fix="give the model or EMA .pt of guided-diffusion's UNetModel")
    if "label_emb.weight" in obj:
        raise UserError("is class-conditional (label_emb); only unconditional UNets are supported", path=path)
    return {k: v.float() for k, v in obj.items()}


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


def infer_architecture(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """What the tensors say, in guided-diffusion's names (attention as downsample rates ``attention_ds``)."""
    def bad(why: str) -> UserError:
        return UserError(f"unexpected guided-diffusion UNet layout: {why}", path=path)

    mc = state["time_embed.0.weight"].shape[1]
    if state["input_blocks.0.0.weight"].shape[1] != 3:
        raise UserError(f"takes {state['input_blocks.0.0.weight'].shape[1]} input channels, not 3 "
                        "(a super-resolution model?); only image UNets are supported", path=path)
    out_ch = state["out.2.weight"].shape[0]
    if out_ch not in (3, 6):
        raise bad(f"out.2.weight gives {out_ch} output channels, expected 3 or 6")
    n_in, n_out = _count(state, "input_blocks"), _count(state, "output_blocks")
    ups = [i for i in range(n_out) if f"output_blocks.{i}.1.conv.weight" in state
           or f"output_blocks.{i}.2.conv.weight" in state or f"output_blocks.{i}.1.in_layers.0.weight" in state
           or f"output_blocks.{i}.2.in_layers.0.weight" in state]
    num_res = ups[0] if ups else n_out - 1
    levels = n_out // (num_res + 1) if num_res + 1 else 0
    if num_res < 1 or levels * (num_res + 1) != n_out or n_in != n_out or len(ups) != levels - 1:
        raise bad(f"{n_in} input and {n_out} output blocks do not form levels of num_res_blocks each")
    try:
        return _levels(state, mc, num_res, levels, out_ch, bad)
    except KeyError as err:
        raise bad(f"no tensor {err.args[0]}") from None


def _levels(state: dict[str, torch.Tensor], mc: int, num_res: int, levels: int, out_ch: int, bad) -> dict[str, Any]:
    """Per level: its width (channel_mult), attention, the FiLM width and the downsampler's kind."""
    mult: list[float] = []
    attention_ds, resblock_updown, scale_shift = set(), None, None
    for level in range(levels):
        first = 1 + level * (num_res + 1)
        width = state[f"input_blocks.{first}.0.in_layers.2.weight"].shape[0]
        mult.append(width // mc if width % mc == 0 else width / mc)
        if f"input_blocks.{first}.1.qkv.weight" in state:
            attention_ds.add(2 ** level)
        emb = state[f"input_blocks.{first}.0.emb_layers.1.weight"].shape[0]
        scale_shift = emb == 2 * width
        if level < levels - 1:
            down = first + num_res
            resblock_updown = f"input_blocks.{down}.0.in_layers.0.weight" in state
            if not resblock_updown and f"input_blocks.{down}.0.op.weight" not in state:
                raise bad(f"input block {down} is neither a conv nor a ResBlock downsampler")
    return dict(num_channels=mc, num_res_blocks=num_res, channel_mult=tuple(mult), learn_sigma=out_ch == 6,
                attention_ds=frozenset(attention_ds), use_scale_shift_norm=bool(scale_shift),
                resblock_updown=bool(resblock_updown))


def _value(key: str, raw: Any, path: Path) -> Any:
    def wrong(expected: str) -> UserError:
        return UserError(f"{key} is {quote(raw)}, expected {expected}", path=path)

    if key in BOOL_KEYS:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("yes", "true", "t", "y", "1", "no", "false", "f", "n", "0"):
            return raw.lower() in ("yes", "true", "t", "y", "1")
        raise wrong("true or false")
    if key in INT_KEYS:
        if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
            return int(raw)
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        raise wrong("an integer")
    if key in ("attention_resolutions", "channel_mult"):
        items = raw.split(",") if isinstance(raw, str) else raw
        if isinstance(raw, str) and not raw.strip():
            return ()
        try:
            numbers = tuple(float(x) for x in items)
        except (TypeError, ValueError):
            raise wrong("numbers as \"32,16,8\" or [32, 16, 8]") from None
        if key == "attention_resolutions":
            if any(n <= 0 or n != int(n) for n in numbers):
                raise wrong("positive integers")
            return tuple(int(n) for n in numbers)
        return tuple(int(n) if n == int(n) else n for n in numbers)
    if key == "noise_schedule":
        if raw not in SCHEDULES:
            raise wrong(" or ".join(map(repr, SCHEDULES)))
        return raw
    if key == "timestep_respacing":
        if raw not in ("", None):
            raise UserError(f"timestep_respacing {quote(raw)} is not supported: features use the full schedule",
                            path=path, fix="remove it or set it to \"\"")
        return ""
    if key == "dropout":
        if isinstance(raw, (int, float, str)) and not isinstance(raw, bool):
            return raw
        raise wrong("a number")
    return raw


def read_flags(path: Path) -> dict[str, Any]:
    """The JSON's keys with upstream's types; refusals name the key."""
    if not path.is_file():
        raise UserError("missing: the settings of the checkpoint beside it", path=path, fix=FLAGS_FIX)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"is not valid JSON ({err})", path=path, fix=FLAGS_FIX) from None
    if not isinstance(data, dict):
        raise UserError(f"must hold a JSON object, found a {type(data).__name__}", path=path, fix=FLAGS_FIX)
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise UserError(f"unknown key {quote(unknown[0])}", path=path,
                        fix="use guided-diffusion's argument names (model_and_diffusion_defaults)")
    if "image_size" not in data:
        raise UserError("required key 'image_size' is missing", path=path,
                        fix="add the image_size the model was trained at")
    if "num_heads" not in data and "num_head_channels" not in data:  # the middle block always attends
        raise UserError("required key 'num_head_channels' (or 'num_heads') is missing: the tensors do not say how "
                        "attention splits into heads", path=path, fix="copy it from the model's MODEL_FLAGS")
    flags = {key: _value(key, raw, path) for key, raw in data.items()}
    if flags.get("class_cond"):
        raise UserError("class_cond true: class-conditional models are not supported", path=path)
    if flags["image_size"] <= 0:
        raise UserError(f"image_size is {flags['image_size']}, expected a positive size", path=path)
    if flags.get("diffusion_steps", 1) <= 0:
        raise UserError(f"diffusion_steps is {flags['diffusion_steps']}, expected a positive count", path=path)
    return flags


def merge(inferred: dict[str, Any], flags: dict[str, Any], path: Path) -> ADMCheckpoint:
    """The tensors' facts checked against the JSON; the JSON's other settings (or upstream's defaults)."""
    json_path = Path(f"{path}.json")
    size = flags["image_size"]

    def contradict(key: str, said: Any, found: Any) -> UserError:
        return UserError(f"{key} is {quote(said)} but the checkpoint's tensors say {quote(found)}", path=json_path,
                         fix=f"correct {key} or remove it")

    for key in ("num_channels", "num_res_blocks", "learn_sigma", "use_scale_shift_norm", "resblock_updown"):
        if key in flags and flags[key] != inferred[key]:
            raise contradict(key, flags[key], inferred[key])
    mult = inferred["channel_mult"]
    said_mult, key_said = flags.get("channel_mult", ()), "channel_mult"
    if said_mult == ():  # "" or absent: upstream's default for the size (None: it has none for this size)
        said_mult, key_said = channel_mult_for(size), f"channel_mult \"\" (the default at image_size {size})"
    if said_mult is not None and tuple(said_mult) != tuple(mult):
        raise contradict(key_said, ",".join(map(str, said_mult)), ",".join(map(str, mult)))
    levels = len(mult)
    if size % 2 ** (levels - 1):
        raise UserError(f"image_size {size} does not halve {levels - 1} times", path=json_path)
    level_ds = {2 ** level for level in range(levels)}
    resolutions = flags.get("attention_resolutions", None)
    if resolutions is None:
        resolutions = tuple(size // ds for ds in sorted(inferred["attention_ds"]))
    said_ds = {size // r for r in resolutions} & level_ds  # rates past the deepest level never apply upstream
    if said_ds != inferred["attention_ds"]:
        raise contradict("attention_resolutions", ",".join(map(str, resolutions)),
                         ",".join(str(size // ds) for ds in sorted(inferred["attention_ds"], reverse=True)) or "none")
    get = lambda key: flags.get(key, DEFAULTS[key])  # noqa: E731
    unet = UNetConfig(
        image_size=size, num_channels=inferred["num_channels"], num_res_blocks=inferred["num_res_blocks"],
        channel_mult=tuple(mult), attention_resolutions=tuple(resolutions), learn_sigma=inferred["learn_sigma"],
        num_heads=get("num_heads"), num_head_channels=get("num_head_channels"),
        num_heads_upsample=get("num_heads_upsample"), use_scale_shift_norm=inferred["use_scale_shift_norm"],
        resblock_updown=inferred["resblock_updown"], use_new_attention_order=get("use_new_attention_order"))
    _check_heads(unet, inferred["attention_ds"], json_path)
    return ADMCheckpoint(path=path, unet=unet, diffusion_steps=get("diffusion_steps"),
                         noise_schedule=get("noise_schedule"), rescale_timesteps=get("rescale_timesteps"))


def _check_heads(unet: UNetConfig, attention_ds: frozenset[int], json_path: Path) -> None:
    """Every attention layer's width splits into the configured heads (upstream asserts the same)."""
    widths = {unet.level_channels(level) for level in range(len(unet.channel_mult)) if 2 ** level in attention_ds}
    widths.add(unet.level_channels(len(unet.channel_mult) - 1))  # the middle block always attends
    up = unet.num_heads if unet.num_heads_upsample == -1 else unet.num_heads_upsample
    for width in sorted(widths):
        if unet.num_head_channels != -1:
            if unet.num_head_channels <= 0 or width % unet.num_head_channels:
                raise UserError(f"num_head_channels {unet.num_head_channels} does not divide a {width}-channel "
                                "attention layer", path=json_path)
        else:
            for key, heads in (("num_heads", unet.num_heads), ("num_heads_upsample", up)):
                if heads <= 0 or width % heads:
                    raise UserError(f"{key} {heads} does not divide a {width}-channel attention layer", path=json_path)

"""Test support: StyleGAN2 checkpoints in the exact on-disk layouts of the original code bases, and a
plain reference forward pass written independently of dgan_al's implementation.

- ``random_rosinality_state``: a rosinality/stylegan2-pytorch ``Generator.state_dict()`` (key names and
  shapes as that code base creates them), random values.
- ``rosinality_to_ada_tensors``: the same weights under stylegan2-ada-pytorch's ``G_ema`` names (the
  published rosinality <-> NVIDIA mapping: style.{i+1} -> mapping.fc{i}, convs.{2j}/{2j+1} ->
  b{res}.conv0/conv1, to_rgbs.{j} -> b{res}.torgb, noises.noise_{i} -> noise_const).
- ``nvidia_generator`` + ``write_nvidia_pickle``: a training-loop snapshot pickle whose networks are
  ``torch_utils.persistence`` records with the keys, nesting and attributes that stylegan2-ada-pytorch
  and the stylegan3 repository write (module source string included, which must never run).
- ``write_rosinality_converted`` / ``write_rosinality_training``: convert_weight.py's and train.py's files.
- ``reference_forward``: per-sample convolution with explicitly modulated weights, explicit zero
  insertion for the transposed conv, explicit FIR padding: the equations, not our code path.
"""

from __future__ import annotations

import copy
import math
import pickle
import sys
import types
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F


def random_rosinality_state(size: int, style_dim: int, n_mlp: int, channels: dict[int, int],
                            seed: int = 0, lr_mlp: float = 0.01, noise_weight: float = 0.1) -> dict:
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    log_size = int(math.log2(size))
    sd: dict[str, torch.Tensor] = OrderedDict()
    for i in range(1, n_mlp + 1):
        sd[f"style.{i}.weight"] = randn(style_dim, style_dim) / lr_mlp
        sd[f"style.{i}.bias"] = randn(style_dim, scale=0.1)

    def styled(prefix, cin, cout, k=3, up=False):
        sd[f"{prefix}.conv.weight"] = randn(1, cout, cin, k, k)
        sd[f"{prefix}.conv.modulation.weight"] = randn(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + randn(cin, scale=0.1)
        if up:
            sd[f"{prefix}.conv.blur.kernel"] = _blur_kernel() * 4
        sd[f"{prefix}.noise.weight"] = torch.full([1], noise_weight) + randn(1, scale=0.05)
        sd[f"{prefix}.activate.bias"] = randn(cout, scale=0.1)

    def torgb(prefix, cin, upsample):
        if upsample:
            sd[f"{prefix}.upsample.kernel"] = _blur_kernel() * 4
        sd[f"{prefix}.conv.weight"] = randn(1, 3, cin, 1, 1)
        sd[f"{prefix}.conv.modulation.weight"] = randn(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + randn(cin, scale=0.1)
        sd[f"{prefix}.bias"] = randn(1, 3, 1, 1, scale=0.1)

    sd["input.input"] = randn(1, channels[4], 4, 4)
    styled("conv1", channels[4], channels[4])
    torgb("to_rgb1", channels[4], False)
    cin = channels[4]
    for i in range(3, log_size + 1):
        cout = channels[2 ** i]
        styled(f"convs.{2 * (i - 3)}", cin, cout, up=True)
        styled(f"convs.{2 * (i - 3) + 1}", cout, cout)
        torgb(f"to_rgbs.{i - 3}", cout, True)
        cin = cout
    for layer_idx in range((log_size - 2) * 2 + 1):
        res = (layer_idx + 5) // 2
        sd[f"noises.noise_{layer_idx}"] = randn(1, 1, 2 ** res, 2 ** res)
    return sd


def _blur_kernel() -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = torch.outer(k, k)
    return k / k.sum()


def rosinality_to_ada_tensors(sd: dict, size: int, n_mlp: int) -> dict[str, torch.Tensor]:
    log_size = int(math.log2(size))
    t: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        t[f"mapping.fc{i}.weight"] = sd[f"style.{i + 1}.weight"]
        t[f"mapping.fc{i}.bias"] = sd[f"style.{i + 1}.bias"]
    t["synthesis.b4.const"] = sd["input.input"][0]

    def modconv(dst, src):
        t[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        t[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        t[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        t[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].squeeze()
        t[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
        t[f"{dst}.resample_filter"] = _blur_kernel()

    def torgb(dst, src):
        t[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        t[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        t[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        t[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(-1)

    modconv("synthesis.b4.conv1", "conv1")
    torgb("synthesis.b4.torgb", "to_rgb1")
    for i in range(log_size - 2):
        res = 4 * 2 ** (i + 1)
        modconv(f"synthesis.b{res}.conv0", f"convs.{2 * i}")
        modconv(f"synthesis.b{res}.conv1", f"convs.{2 * i + 1}")
        torgb(f"synthesis.b{res}.torgb", f"to_rgbs.{i}")
        t[f"synthesis.b{res}.resample_filter"] = _blur_kernel()
    for i in range((log_size - 2) * 2 + 1):
        res = 4 * 2 ** math.ceil(i / 2)
        t[f"synthesis.b{res}.conv{(i + 1) % 2}.noise_const"] = sd[f"noises.noise_{i}"].reshape(res, res)
    return t


# ---------------------------------------------------------------------------------------------------
# rosinality files, as its train.py and convert_weight.py write them


def write_rosinality_converted(path, g_ema: dict, latent_avg: torch.Tensor, g: dict | None = None,
                               d: dict | None = None):
    """convert_weight.py: ``{"g_ema", "latent_avg"}`` (TensorFlow's dlatent_avg), ``"g"`` with --gen,
    ``"d"`` with --disc; written by ``torch.save`` (zip serialisation)."""
    ckpt = {"g_ema": g_ema, "latent_avg": latent_avg}
    if g is not None:
        ckpt["g"] = g
    if d is not None:
        ckpt["d"] = d
    torch.save(ckpt, path)


def write_rosinality_training(path, g: dict, g_ema: dict, d: dict, size: int, n_mlp: int, latent: int):
    """train.py's checkpoint: g, d, g_ema state dicts, both Adam states, the argparse Namespace, ada_aug_p.
    No latent_avg (its generate.py averages ``mean_latent(4096)`` when truncating)."""
    import argparse

    def adam_state(sd):  # Adam after one step over these tensors, betas as train.py sets them
        params = [torch.nn.Parameter(v.clone()) for v in sd.values() if v.dtype.is_floating_point]
        opt = torch.optim.Adam(params, lr=0.002, betas=(0.0, 0.99))
        sum(p.sum() for p in params).backward()
        opt.step()
        return opt.state_dict()

    args = argparse.Namespace(
        path="lmdb/cars", arch="stylegan2", iter=800000, batch=16, n_sample=64, size=size, r1=10.0,
        path_regularize=2.0, path_batch_shrink=2, d_reg_every=16, g_reg_every=4, mixing=0.9, ckpt=None,
        lr=0.002, channel_multiplier=2, wandb=False, local_rank=0, augment=False, augment_p=0.0,
        ada_target=0.6, ada_length=500000, ada_every=256, distributed=False, latent=latent, n_mlp=n_mlp,
        start_iter=0)
    torch.save({"g": g, "d": d, "g_ema": g_ema, "g_optim": adam_state(g), "d_optim": adam_state(d),
                "args": args, "ada_aug_p": 0.0}, path)


def random_rosinality_discriminator(seed: int = 0) -> dict:
    """A few tensors under rosinality Discriminator names (our loader must ignore ``d``)."""
    g = torch.Generator().manual_seed(seed)
    return OrderedDict([("convs.0.0.weight", torch.randn(16, 3, 1, 1, generator=g)),
                        ("convs.0.1.bias", torch.zeros(16)), ("final_linear.1.weight", torch.randn(1, 16, generator=g)),
                        ("final_linear.1.bias", torch.zeros(1))])


# ---------------------------------------------------------------------------------------------------
# NVIDIA network pickles, as torch_utils/persistence.py writes them
#
# ``@persistent_class`` pickles an instance as ``_reconstruct_persistent_obj(meta)`` with
# meta = {type: 'class', version: 6, module_src: <the whole module's source>, class_name, state}, where
# state is the module's ``__dict__``: torch.nn.Module's own fields, the attributes the class's __init__
# sets, then ``_init_args`` (tuple) and ``_init_kwargs`` (a deep copy of the keyword arguments; nested
# dicts stay dnnlib EasyDicts). Parameters and buffers live in ``_parameters`` / ``_buffers``,
# sub-modules (records themselves) in ``_modules``. The classes below are built with exactly the
# arguments and attributes of stylegan2-ada-pytorch ``training/networks.py`` ("ada") or the stylegan3
# repository's ``training/networks_stylegan2.py`` ("stylegan3"); the training loop pickles
# dict(G, D, G_ema, augment_pipe, training_set_kwargs).

# nn.Module.__init__'s fields: torch 1.7.1 (stylegan2-ada's pinned version) and torch 1.9 (stylegan3's)
_MODULE_FIELDS = {
    "ada": ("training", "_parameters", "_buffers", "_non_persistent_buffers_set", "_backward_hooks",
            "_forward_hooks", "_forward_pre_hooks", "_state_dict_hooks", "_load_state_dict_pre_hooks", "_modules"),
    "stylegan3": ("training", "_parameters", "_buffers", "_non_persistent_buffers_set", "_backward_hooks",
                  "_is_full_backward_hook", "_forward_hooks", "_forward_pre_hooks", "_state_dict_hooks",
                  "_load_state_dict_pre_hooks", "_modules"),
}

# stands in for the module source a record carries (upstream: the whole networks module); never run
NETWORK_SOURCES = {
    "ada": "import torch\n" + "".join(
        f"class {c}(torch.nn.Module):\n    pass\n" for c in (
            "FullyConnectedLayer", "Conv2dLayer", "MappingNetwork", "SynthesisLayer", "ToRGBLayer",
            "SynthesisBlock", "SynthesisNetwork", "Generator", "DiscriminatorBlock", "MinibatchStdLayer",
            "DiscriminatorEpilogue", "Discriminator")),
}
NETWORK_SOURCES["stylegan3"] = NETWORK_SOURCES["ada"]


def _persistent_reconstruct(meta):  # stands in for torch_utils.persistence._reconstruct_persistent_obj
    raise AssertionError("only used for pickling")


class _EasyDict(dict):  # stands in for dnnlib.util.EasyDict
    pass


@contextmanager
def fake_modules(**attrs_by_module):
    """Temporarily register modules (e.g. torch_utils.persistence) so pickle writes their names."""
    saved = {}
    try:
        for modname, attrs in attrs_by_module.items():
            modname = modname.replace("__", ".")
            parts = modname.split(".")
            for j in range(1, len(parts) + 1):
                name = ".".join(parts[:j])
                saved.setdefault(name, sys.modules.get(name))
                sys.modules.setdefault(name, types.ModuleType(name))
            for key, obj in attrs.items():
                obj.__module__ = modname
                obj.__qualname__ = key
                obj.__name__ = key
                setattr(sys.modules[modname], key, obj)
        yield
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


class PersistentModule:
    """One ``@persistent_class`` torch module as its pickle holds it (see the section comment)."""

    def __init__(self, flavour: str, class_name: str, args: tuple, kwargs: dict, module_src: str | None = None):
        self.class_name = class_name
        self.module_src = module_src if module_src is not None else NETWORK_SOURCES[flavour]
        self.state: dict = {}
        for key in _MODULE_FIELDS[flavour]:
            self.state[key] = {"training": False, "_non_persistent_buffers_set": set(),
                               "_is_full_backward_hook": None}.get(key, OrderedDict())
        self.init_args, self.init_kwargs = tuple(args), copy.deepcopy(kwargs)

    def param(self, name, value):
        self.state["_parameters"][name] = torch.nn.Parameter(value.detach().clone(), requires_grad=False)

    def buffer(self, name, value):
        self.state["_buffers"][name] = value.detach().clone()

    def module(self, name, record: "PersistentModule"):
        self.state["_modules"][name] = record

    def attr(self, name, value):
        self.state[name] = value

    def __reduce__(self):
        state = dict(self.state, _init_args=self.init_args, _init_kwargs=self.init_kwargs)
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=self.class_name, state=state)
        return (_persistent_reconstruct, (meta,))


def setup_filter() -> torch.Tensor:
    """upfirdn2d.setup_filter([1,3,3,1]): the normalised 4x4 outer product."""
    return _blur_kernel()


def _fc(flavour, t, prefix, args, kwargs, activation="linear", lr_multiplier=1, bias_init=0):
    rec = PersistentModule(flavour, "FullyConnectedLayer", args, kwargs)
    if flavour == "stylegan3":
        rec.attr("in_features", args[0])
        rec.attr("out_features", args[1])
    rec.attr("activation", activation)
    rec.param("weight", t[f"{prefix}.weight"])
    rec.param("bias", t[f"{prefix}.bias"])
    rec.attr("weight_gain", lr_multiplier / np.sqrt(args[0]))
    rec.attr("bias_gain", lr_multiplier)
    return rec


def _synthesis_layer(flavour, t, prefix, in_ch, out_ch, w_dim, res, up, conv_clamp, channels_last=False):
    kwargs = dict(w_dim=w_dim, resolution=res)
    if up:
        kwargs.update(up=2, resample_filter=[1, 3, 3, 1])
    kwargs.update(conv_clamp=conv_clamp, channels_last=channels_last)
    rec = PersistentModule(flavour, "SynthesisLayer", (in_ch, out_ch), kwargs)
    if flavour == "stylegan3":
        for k, v in (("in_channels", in_ch), ("out_channels", out_ch), ("w_dim", w_dim)):
            rec.attr(k, v)
    for k, v in (("resolution", res), ("up", 2 if up else 1), ("use_noise", True), ("activation", "lrelu"),
                 ("conv_clamp", conv_clamp)):
        rec.attr(k, v)
    rec.buffer("resample_filter", setup_filter())
    rec.attr("padding", 1)
    rec.attr("act_gain", np.sqrt(2))
    rec.module("affine", _fc(flavour, t, f"{prefix}.affine", (w_dim, in_ch), dict(bias_init=1)))
    rec.param("weight", t[f"{prefix}.weight"])
    rec.buffer("noise_const", t[f"{prefix}.noise_const"])
    rec.param("noise_strength", t[f"{prefix}.noise_strength"].reshape([]))
    rec.param("bias", t[f"{prefix}.bias"])
    return rec


def _torgb(flavour, t, prefix, in_ch, img_channels, w_dim, conv_clamp, channels_last=False):
    rec = PersistentModule(flavour, "ToRGBLayer", (in_ch, img_channels),
                           dict(w_dim=w_dim, conv_clamp=conv_clamp, channels_last=channels_last))
    if flavour == "stylegan3":
        for k, v in (("in_channels", in_ch), ("out_channels", img_channels), ("w_dim", w_dim)):
            rec.attr(k, v)
    rec.attr("conv_clamp", conv_clamp)
    rec.module("affine", _fc(flavour, t, f"{prefix}.affine", (w_dim, in_ch), dict(bias_init=1)))
    rec.param("weight", t[f"{prefix}.weight"])
    rec.param("bias", t[f"{prefix}.bias"])
    rec.attr("weight_gain", 1 / np.sqrt(in_ch))
    return rec


def nvidia_generator(t: dict[str, torch.Tensor], flavour: str, z_dim: int, w_dim: int, img_resolution: int,
                     generator_kwargs: dict, img_channels: int = 3, c_dim: int = 0,
                     module_src: str | None = None) -> PersistentModule:
    """A ``Generator`` record built the way the training loop builds it: ``construct_class_by_name(
    **G_kwargs, **common_kwargs)``, i.e. ``generator_kwargs`` (G_kwargs without class_name) followed by
    c_dim, img_resolution, img_channels. ``t`` holds the flat ``G_ema`` tensors."""
    kwargs = dict(generator_kwargs, c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels)
    assert kwargs["z_dim"] == z_dim and kwargs["w_dim"] == w_dim
    mapping_kwargs = dict(kwargs.get("mapping_kwargs") or {})
    if flavour == "ada":
        synthesis_kwargs = dict(kwargs.get("synthesis_kwargs") or {})
    else:
        synthesis_kwargs = {k: v for k, v in kwargs.items() if k not in (
            "z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")}
    g = PersistentModule(flavour, "Generator", (), kwargs, module_src)
    for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        g.attr(k, kwargs[k])

    # SynthesisNetwork(w_dim=, img_resolution=, img_channels=, **synthesis_kwargs)
    sk = dict(synthesis_kwargs)
    channel_base = sk.pop("channel_base", 32768)
    channel_max = sk.pop("channel_max", 512)
    num_fp16_res = sk.pop("num_fp16_res", 0 if flavour == "ada" else 4)
    block_kwargs = sk
    syn = PersistentModule(flavour, "SynthesisNetwork", (), dict(
        w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs), module_src)
    log2 = int(np.log2(img_resolution))
    resolutions = [2 ** i for i in range(2, log2 + 1)]
    for k, v in (("w_dim", w_dim), ("img_resolution", img_resolution), ("img_resolution_log2", log2),
                 ("img_channels", img_channels)):
        syn.attr(k, v)
    if flavour == "stylegan3":
        syn.attr("num_fp16_res", num_fp16_res)
    syn.attr("block_resolutions", resolutions)
    channels = {r: min(channel_base // r, channel_max) for r in resolutions}
    fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
    num_ws = 0
    for r in resolutions:
        in_ch = channels[r // 2] if r > 4 else 0
        out_ch = channels[r]
        use_fp16 = r >= fp16_resolution
        is_last = r == img_resolution
        # SynthesisBlock(in, out, w_dim=, resolution=, img_channels=, is_last=, use_fp16=, **block_kwargs)
        bk = dict(w_dim=w_dim, resolution=r, img_channels=img_channels, is_last=is_last, use_fp16=use_fp16,
                  **block_kwargs)
        block = PersistentModule(flavour, "SynthesisBlock", (in_ch, out_ch), bk, module_src)
        architecture = block_kwargs.get("architecture", "skip")
        conv_clamp = block_kwargs.get("conv_clamp", None if flavour == "ada" else 256)
        channels_last = use_fp16 and block_kwargs.get("fp16_channels_last", False)
        for k, v in (("in_channels", in_ch), ("w_dim", w_dim), ("resolution", r), ("img_channels", img_channels),
                     ("is_last", is_last), ("architecture", architecture), ("use_fp16", use_fp16),
                     ("channels_last", channels_last)):
            block.attr(k, v)
        if flavour == "stylegan3":
            block.attr("fused_modconv_default", block_kwargs.get("fused_modconv_default", True))
        block.buffer("resample_filter", setup_filter())
        block.attr("num_conv", 1 if r == 4 else 2)
        block.attr("num_torgb", 1)
        src = f"synthesis.b{r}"
        if r == 4:
            block.param("const", t[f"{src}.const"])
        else:
            block.module("conv0", _synthesis_layer(flavour, t, f"{src}.conv0", in_ch, out_ch, w_dim, r, True,
                                                   conv_clamp, channels_last))
        block.module("conv1", _synthesis_layer(flavour, t, f"{src}.conv1", out_ch, out_ch, w_dim, r, False,
                                               conv_clamp, channels_last))
        block.module("torgb", _torgb(flavour, t, f"{src}.torgb", out_ch, img_channels, w_dim, conv_clamp,
                                     channels_last))
        num_ws += (1 if r == 4 else 2) + (1 if is_last else 0)
        syn.module(f"b{r}", block)
    syn.attr("num_ws", num_ws)
    g.module("synthesis", syn)
    g.attr("num_ws", num_ws)

    # MappingNetwork(z_dim=, c_dim=, w_dim=, num_ws=, **mapping_kwargs)
    m = PersistentModule(flavour, "MappingNetwork", (), dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=num_ws,
                                                             **mapping_kwargs), module_src)
    num_layers = mapping_kwargs.get("num_layers", 8)
    lr_multiplier = mapping_kwargs.get("lr_multiplier", 0.01)
    for k, v in (("z_dim", z_dim), ("c_dim", c_dim), ("w_dim", w_dim), ("num_ws", num_ws),
                 ("num_layers", num_layers), ("w_avg_beta", mapping_kwargs.get(
                     "w_avg_beta", 0.995 if flavour == "ada" else 0.998))):
        m.attr(k, v)
    features = [z_dim] + [w_dim] * num_layers
    for i in range(num_layers):
        m.module(f"fc{i}", _fc(flavour, t, f"mapping.fc{i}", (features[i], features[i + 1]),
                               dict(activation="lrelu", lr_multiplier=lr_multiplier),
                               activation="lrelu", lr_multiplier=lr_multiplier))
    m.buffer("w_avg", t["mapping.w_avg"])
    g.module("mapping", m)
    return g


def generator_kwargs(flavour: str, z_dim: int, w_dim: int, num_layers: int, channel_base: int,
                     channel_max: int, fp32: bool = False, **synthesis_extra) -> dict:
    """G_kwargs (without class_name) as train.py sets them.

    ada (stylegan2-ada-pytorch train.py): mapping_kwargs / synthesis_kwargs EasyDicts, synthesis with
    num_fp16_res=4 and conv_clamp=256 (0 / None with --fp32). stylegan3 train.py --cfg=stylegan2:
    synthesis settings flat, fused_modconv_default='inference_only', conv_clamp only with --fp32
    (None), otherwise the SynthesisBlock class default 256. ``synthesis_extra`` overrides (a user's
    own setting, e.g. another conv_clamp)."""
    if flavour == "ada":
        syn = _EasyDict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=0 if fp32 else 4,
                        conv_clamp=None if fp32 else 256)
        syn.update(synthesis_extra)
        return dict(z_dim=z_dim, w_dim=w_dim, mapping_kwargs=_EasyDict(num_layers=num_layers), synthesis_kwargs=syn)
    kwargs = dict(z_dim=z_dim, w_dim=w_dim, mapping_kwargs=_EasyDict(num_layers=num_layers),
                  channel_base=channel_base, channel_max=channel_max, fused_modconv_default="inference_only")
    if fp32:
        kwargs.update(num_fp16_res=0, conv_clamp=None)
    kwargs.update(synthesis_extra)
    return kwargs


def _other_record(flavour, class_name, kwargs, params):
    rec = PersistentModule(flavour, class_name, (), kwargs)
    for k, v in params.items():
        rec.param(k, v)
    return rec


def write_nvidia_pickle(path, g_ema: PersistentModule, g: PersistentModule | None = None,
                        flavour: str = "ada", extra: dict | None = None):
    """The training loop's snapshot: dict(G, D, G_ema, augment_pipe, training_set_kwargs) by pickle.dump.

    ada pickles are written with protocol 3 (Python 3.7's default, which stylegan2-ada pins) and numpy
    1.x global names; stylegan3 ones with protocol 4 (Python 3.8+)."""
    d = _other_record(flavour, "Discriminator", dict(c_dim=0, img_resolution=32, img_channels=3),
                      {"b32.fromrgb.weight": torch.randn(16, 3, 1, 1)})
    augment = _other_record(flavour, "AugmentPipe", dict(xflip=1, rotate90=1), {})
    augment.buffer("p", torch.tensor(0.2))
    data = dict(G=g if g is not None else g_ema, D=d, G_ema=g_ema, augment_pipe=augment,
                training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path="~/datasets/cars.zip",
                                         use_labels=False, max_size=None, xflip=False, resolution=32,
                                         random_seed=0))
    data.update(extra or {})
    with fake_modules(torch_utils__persistence={"_reconstruct_persistent_obj": _persistent_reconstruct},
                      dnnlib__util={"EasyDict": _EasyDict}):
        blob = pickle.dumps(data, protocol=3 if flavour == "ada" else 4)
    if flavour == "ada":  # GLOBAL opcodes are plain text in protocol 3: write numpy 1.x's module name
        blob = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    with open(path, "wb") as f:
        f.write(blob)


# ---------------------------------------------------------------------------------------------------
# the plain reference forward (rosinality state dict in, per sample, explicit)


def _fir(x, kernel, pad0, pad1):
    c = x.shape[1]
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    return F.conv2d(x, kernel.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)


def _zero_insert(x):
    b, c, h, w = x.shape
    out = torch.zeros(b, c, 2 * h - 1, 2 * w - 1)
    out[:, :, ::2, ::2] = x
    return out


def reference_forward(sd, ws, size, n_mlp=None, conv_clamp=None):
    """ws [B, num_ws, w_dim] -> (image [B,3,size,size], feature taps), one sample at a time.

    ``conv_clamp`` as stylegan2-ada: conv outputs are clamped to +-conv_clamp after the sqrt 2 activation
    gain, toRGB outputs to +-conv_clamp before they are added to the upsampled skip image."""
    clamp = (lambda t: t.clamp(-conv_clamp, conv_clamp)) if conv_clamp is not None else (lambda t: t)
    log_size = int(math.log2(size))
    blur = _blur_kernel()
    images, feats_all = [], []
    style_dim = ws.shape[2]
    for b in range(ws.shape[0]):
        w = ws[b]

        def modconv(x, prefix, wv, demod=True, up=False):
            weight = sd[f"{prefix}.conv.weight"][0]  # [out, in, k, k]
            cout, cin, k, _ = weight.shape
            style = wv @ (sd[f"{prefix}.conv.modulation.weight"] / math.sqrt(style_dim)).t() \
                + sd[f"{prefix}.conv.modulation.bias"]
            wm = weight / math.sqrt(cin * k * k) * style[None, :, None, None]
            if demod:
                wm = wm / torch.sqrt(wm.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
            if up:  # transposed conv = zero insertion, pad k-1, convolution with the kernel (flipped corr.)
                y = F.conv2d(F.pad(_zero_insert(x), [k - 1] * 4), wm.flip([2, 3]))
                return _fir(y, blur * 4, 1, 1)
            return F.conv2d(x, wm, padding=k // 2)

        def styled(x, prefix, wv, noise, up=False):
            x = modconv(x, prefix, wv, up=up)
            x = x + sd[f"{prefix}.noise.weight"] * noise
            return clamp(F.leaky_relu(x + sd[f"{prefix}.activate.bias"][None, :, None, None], 0.2) * math.sqrt(2))

        def torgb(x, prefix, wv, skip):
            y = clamp(modconv(x, prefix, wv, demod=False) + sd[f"{prefix}.bias"])
            if skip is not None:
                up = torch.zeros(1, 3, skip.shape[2] * 2, skip.shape[3] * 2)
                up[:, :, ::2, ::2] = skip
                y = y + _fir(up, blur * 4, 2, 1)
            return y

        feats = []
        x = sd["input.input"]
        feats.append(x)
        x = styled(x, "conv1", w[0], sd["noises.noise_0"])
        feats.append(x)
        img = torgb(x, "to_rgb1", w[1], None)
        i = 1
        for j in range(log_size - 2):
            x = styled(x, f"convs.{2 * j}", w[i], sd[f"noises.noise_{2 * j + 1}"], up=True)
            feats.append(x)
            x = styled(x, f"convs.{2 * j + 1}", w[i + 1], sd[f"noises.noise_{2 * j + 2}"])
            feats.append(x)
            img = torgb(x, f"to_rgbs.{j}", w[i + 2], img)
            i += 2
        images.append(img)
        feats_all.append(feats)
    features = [torch.cat([f[t] for f in feats_all]) for t in range(len(feats_all[0]))]
    return torch.cat(images), features


def reference_mapping(sd, z, n_mlp, lr_mul=0.01):
    x = z / torch.sqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        weight, bias = sd[f"style.{i}.weight"], sd[f"style.{i}.bias"]
        x = x @ (weight * lr_mul / math.sqrt(weight.shape[1])).t() + bias * lr_mul
        x = F.leaky_relu(x, 0.2) * math.sqrt(2)
    return x

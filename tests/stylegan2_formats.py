"""Test support: StyleGAN2 checkpoints in the exact on-disk layouts of the original code bases, and a
plain reference forward pass written independently of dgan_al's implementation.

- ``random_rosinality_state``: a rosinality/stylegan2-pytorch ``Generator.state_dict()`` (key names and
  shapes as that code base creates them), random values.
- ``rosinality_to_ada_tensors``: the same weights under stylegan2-ada-pytorch's ``G_ema`` names (the
  published rosinality <-> NVIDIA mapping: style.{i+1} -> mapping.fc{i}, convs.{2j}/{2j+1} ->
  b{res}.conv0/conv1, to_rgbs.{j} -> b{res}.torgb, noises.noise_{i} -> noise_const).
- ``write_ada_pickle``: a network pickle whose objects are ``torch_utils.persistence`` records, as
  stylegan2-ada-pytorch writes them (module source string included, which must never run).
- ``reference_forward``: per-sample convolution with explicitly modulated weights, explicit zero
  insertion for the transposed conv, explicit FIR padding: the equations, not our code path.
"""

from __future__ import annotations

import math
import pickle
import sys
import types
from collections import OrderedDict
from contextlib import contextmanager

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
# stylegan2-ada style pickles


def _persistent_reconstruct(meta):  # stands in for torch_utils.persistence._reconstruct_persistent_obj
    raise AssertionError("only used for pickling")


class _EasyDict(dict):
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


class PersistentObj:
    """Pickles exactly as a stylegan2-ada ``@persistent_class`` instance does."""

    def __init__(self, class_name, params=None, buffers=None, modules=None, init_kwargs=None,
                 module_src="class Placeholder:\n    pass\n"):
        self.meta = dict(
            type="class", version=6, module_src=module_src, class_name=class_name,
            state={
                "training": False,
                "_parameters": OrderedDict((k, torch.nn.Parameter(v.clone(), requires_grad=False))
                                           for k, v in (params or {}).items()),
                "_buffers": OrderedDict((k, v.clone()) for k, v in (buffers or {}).items()),
                "_non_persistent_buffers_set": set(),
                "_modules": OrderedDict(modules or {}),
                "init_args": (),
                "init_kwargs": _EasyDict(init_kwargs or {}),
            },
        )

    def __reduce__(self):
        return (_persistent_reconstruct, (self.meta,))


def ada_records(tensors: dict[str, torch.Tensor], class_name="Generator", init_kwargs=None,
                module_src="class Generator:\n    pass\n") -> PersistentObj:
    """Nest flat ``G_ema`` tensors into persistence records (parameters vs buffers as in ada)."""
    buffer_names = {"w_avg", "noise_const", "resample_filter"}
    tree: dict = {}
    for key, value in tensors.items():
        node = tree
        *path, leaf = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value

    def build(name, node):
        params = {k: v for k, v in node.items() if isinstance(v, torch.Tensor) and k not in buffer_names}
        buffers = {k: v for k, v in node.items() if isinstance(v, torch.Tensor) and k in buffer_names}
        modules = {k: build(k, v) for k, v in node.items() if isinstance(v, dict)}
        return PersistentObj(name, params, buffers, modules)

    root = build(class_name, tree)
    root.meta["state"]["init_kwargs"] = _EasyDict(init_kwargs or {})
    root.meta["module_src"] = module_src
    return root


def write_ada_pickle(path, g_ema: PersistentObj, extra: dict | None = None):
    data = dict(G=g_ema, D=None, G_ema=g_ema, augment_pipe=None,
                training_set_kwargs=_EasyDict(path="~/datasets/cars.zip", resolution=32))
    data.update(extra or {})
    with fake_modules(torch_utils__persistence={"_reconstruct_persistent_obj": _persistent_reconstruct},
                      dnnlib__util={"EasyDict": _EasyDict}):
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=4)


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

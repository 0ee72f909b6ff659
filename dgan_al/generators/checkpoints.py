"""Read the StyleGAN checkpoints users already have, without ever running code from the file.

Supported (the configuration is inferred from tensor names and shapes):
- rosinality/stylegan2-pytorch ``.pt``: ``{'g_ema', 'latent_avg'}`` from its converter, full training
  checkpoints (``g``, ``d``, ``g_ema``, optimisers, ``args``), or a bare generator state dict. Read by
  ``torch.load(weights_only=True)``, with ``argparse.Namespace`` (the ``args`` entry) allowed as data.
- NVIDIA stylegan2-ada-pytorch ``.pkl`` (``G_ema``), and the ``stylegan3`` repository's ``--cfg=stylegan2``
  pickles. These carry the Python source of the network classes and a plain unpickle would execute it.
  ``SafeUnpickler`` instead maps every persistence record to an inert ``PersistentRecord`` (class name,
  the module's ``__dict__``), lets through only the functions that rebuild tensors / arrays, and refuses
  any other global before anything runs. ``torch_utils.persistence`` pickles a module's ``__dict__``, so
  the constructor arguments sit under ``_init_kwargs`` and every layer keeps its own settings
  (``conv_clamp``, ``bias_gain``, ``architecture``) as attributes; see ``ada_settings``.
- datasetGAN_release StyleGAN1 ``*.for_g_all.pt``: the state dict of its ``g_all`` (``g_mapping.*`` +
  ``g_synthesis.*``; torch 1.x legacy serialisation), same ``torch.load(weights_only=True)`` path; its
  average latent comes from a file beside the checkpoint (``AVG_LATENT_NAMES``), else it is estimated.
Refused with one clear line: StyleGAN3 pickles, TensorFlow (``dnnlib.tflib``) pickles, conditional
generators, non-skip architectures, and anything else.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import io
import pickle
import pickletools
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dgan_al.errors import UserError
from dgan_al.files import sha256_file
from dgan_al.generators.stylegan2 import (
    OutputWindow,
    StyleGAN2,
    StyleGAN2Config,
    StyleGAN2Generator,
    estimate_w_avg,
)

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
W_AVG_SAMPLES = 10_000  # z samples averaged when a checkpoint stores no w_avg


# ---------------------------------------------------------------------------------------------------
# the restricted unpickler for NVIDIA pickles


@dataclass
class PersistentRecord:
    """What a stylegan2-ada ``persistence`` object unpickles to here: data only, its source never run."""

    class_name: str
    version: int | None
    state: dict
    source_defines: list[str] = field(default_factory=list)  # class names the embedded source defines

    def children(self) -> dict[str, "PersistentRecord"]:
        return {k: v for k, v in (self.state.get("_modules") or {}).items() if isinstance(v, PersistentRecord)}

    def init_kwargs(self) -> dict:
        """The keyword arguments the object was built with (``persistence`` stores ``_init_kwargs``)."""
        kwargs = self.state.get("_init_kwargs")
        return dict(kwargs) if isinstance(kwargs, dict) else {}

    def walk(self, prefix: str = ""):
        """(dotted name, record) for this record and every descendant, parents first."""
        yield prefix, self
        for name, child in self.children().items():
            yield from child.walk(f"{prefix}.{name}" if prefix else name)

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Flatten parameters and buffers of this record and its children, like ``state_dict()``."""
        out: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if isinstance(value, torch.Tensor):
                    out[prefix + name] = value.detach()
        for name, child in self.children().items():
            out.update(child.tensors(prefix + name + "."))
        return out


class RefusedPickle(Exception):
    """A global the restricted unpickler will not resolve (carries the qualified name)."""

    def __init__(self, qualname: str):
        self.qualname = qualname
        super().__init__(qualname)


class TensorFlowPickle(Exception):
    """The pickle holds TensorFlow networks (dnnlib.tflib)."""


class _EasyDict(dict):
    """Stand-in for dnnlib's EasyDict: a plain dict with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise RefusedPickle("torch_utils.persistence record of an unexpected shape")
    source = meta.get("module_src") or ""
    defined = re.findall(r"^class\s+(\w+)", source, flags=re.M) if isinstance(source, str) else []
    return PersistentRecord(str(meta.get("class_name")), meta.get("version"), meta["state"], defined)


def _load_storage_from_bytes(data: bytes):
    # torch pickles a storage as torch.save(...) bytes; read them back without executing anything.
    return torch.load(io.BytesIO(data), weights_only=True)


def _codecs_encode(text: str, encoding: str = "utf-8"):
    if encoding not in ("latin1", "latin-1"):
        raise RefusedPickle(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, encoding)


def _numpy_global(name: str):
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray
    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar}[name]


class SafeUnpickler(pickle.Unpickler):
    """Resolves only an allow-list of globals; everything else raises ``RefusedPickle`` before it runs."""

    ALLOWED = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): lambda: _reconstruct_persistent_obj,
        ("torch._utils", "_rebuild_tensor_v2"): lambda: torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): lambda: torch._utils._rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): lambda: torch._utils._rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): lambda: _load_storage_from_bytes,
        ("collections", "OrderedDict"): lambda: collections.OrderedDict,
        ("dnnlib.util", "EasyDict"): lambda: _EasyDict,
        ("dnnlib", "EasyDict"): lambda: _EasyDict,
        ("_codecs", "encode"): lambda: _codecs_encode,
        ("builtins", "set"): lambda: set,
        ("builtins", "frozenset"): lambda: frozenset,
        ("torch", "device"): lambda: torch.device,
        ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_global("_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_global("_reconstruct"),
        ("numpy.core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
        ("numpy._core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in self.ALLOWED:
            return self.ALLOWED[key]()
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module.startswith("dnnlib.tflib"):
            raise TensorFlowPickle(f"{module}.{name}")
        raise RefusedPickle(f"{module}.{name}")

    def persistent_load(self, pid):
        raise RefusedPickle(f"persistent id {pid!r}")


# ---------------------------------------------------------------------------------------------------
# format detection and loading


def _fail(path: Path, message: str, fix: str | None = None) -> UserError:
    return UserError(message, path=path, fix=fix)


# opcodes a protocol 0/1 pickle (no PROTO header) starts with: MARK, EMPTY_DICT/LIST/TUPLE, GLOBAL
_OLD_PROTOCOL_FIRST = set(b"(}])c")


def detect_format(path: Path) -> str:
    """'torch-zip', 'torch-legacy', 'pickle', 'pickle-protocol-0' (no protocol header: protocol 0 or 1)
    or 'unknown', from the file's first bytes (never by executing it)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04") and zipfile.is_zipfile(path):
        return "torch-zip"
    if head[:1] == b"\x80":
        try:
            ops = pickletools.genops(io.BytesIO(head))
            next(ops)  # PROTO
            op, arg, _ = next(ops)
            if op.name in ("LONG1", "LONG4") and arg == TORCH_LEGACY_MAGIC:
                return "torch-legacy"
        except (ValueError, StopIteration):
            pass
        return "pickle"
    if head[:1] and head[0] in _OLD_PROTOCOL_FIRST:
        try:
            ops = pickletools.genops(io.BytesIO(head))
            for _ in range(2):  # two well-formed opcodes in a row: an old-protocol pickle, not text
                next(ops)
            return "pickle-protocol-0"
        except (ValueError, StopIteration):
            pass
    return "unknown"


def _torch_load(path: Path) -> Any:
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    try:
        if safe_globals is None:  # torch < 2.5: rosinality's `args` Namespace cannot be allowed
            return torch.load(path, map_location="cpu", weights_only=True)
        with safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _fail(path, f"refused to load: the file holds {_forbidden_global(str(err))}, which a checkpoint "
                    "never needs (nothing from the file was run)",
                    "save only the generator weights, e.g. torch.save({'g_ema': g_ema.state_dict()}, path)")
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise _fail(path, f"not a readable PyTorch checkpoint ({type(err).__name__}: {str(err)[:160]})",
                    "check that the file is complete and was written by torch.save")


def _forbidden_global(message: str) -> str:
    """The global named in torch's weights-only refusal ("... GLOBAL posix.system ..."), quoted."""
    found = re.search(r"GLOBAL\s+([\w.]+)", message)
    if found:
        return f"`{found.group(1)}`"
    lines = [ln.strip() for ln in message.splitlines() if ln.strip() and "documentation" not in ln
             and "weights_only" not in ln.lower() and "Weights only" not in ln]
    return f"an object torch refuses ({lines[0][:160]})" if lines else "an object torch refuses"


def _read_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f).load()
    except TensorFlowPickle:
        raise _fail(path, "a TensorFlow StyleGAN pickle (dnnlib.tflib): its networks are TensorFlow code",
                    "convert it to PyTorch first with stylegan2-ada-pytorch's legacy.py or rosinality's "
                    "convert_weight.py")
    except RefusedPickle as err:
        raise _fail(path, f"refused to load: the pickle asks for `{err.qualname}`, which a StyleGAN2 "
                    "checkpoint never needs (nothing from the file was run)",
                    "use a stylegan2-ada-pytorch network pickle or a rosinality .pt file")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, RuntimeError, UnicodeDecodeError) as err:
        raise _fail(path, f"not a readable network pickle ({type(err).__name__}: {str(err)[:160]})",
                    "check that the file is complete")


def load_checkpoint(path: str | Path, truncation_psi: float = 1.0, window: OutputWindow | None = None,
                    device: str | torch.device = "cpu"):
    """Load a StyleGAN2 or StyleGAN1 generator from a checkpoint file, detecting its format from the content."""
    path = Path(path)
    if not path.is_file():
        raise UserError("no such checkpoint file", path=path, fix="give the path of a .pt or .pkl file")
    kind = detect_format(path)
    if kind in ("torch-zip", "torch-legacy"):
        obj = _torch_load(path)
        if is_stylegan1_state(obj):
            return _load_stylegan1(path, obj, truncation_psi=truncation_psi, window=window, device=device)
        model, latent_avg = _from_rosinality(path, obj)
        source = "rosinality stylegan2-pytorch"
    elif kind == "pickle":
        obj = _read_pickle(path)
        model, latent_avg = _from_ada(path, obj)
        source = "NVIDIA stylegan2-ada-pytorch pickle"
    elif kind == "pickle-protocol-0":
        raise _fail(path, "a pickle in the old protocol 0/1 (no protocol header); torch.save and the StyleGAN "
                    "code bases write protocol 2 or higher, so this is no checkpoint they wrote",
                    "save the generator again with torch.save (or pickle protocol >= 2) in the program that made it")
    else:
        raise _fail(path, "unknown file format (neither a PyTorch checkpoint nor a pickle)",
                    "give a rosinality .pt or a stylegan2-ada-pytorch .pkl file")
    with torch.no_grad():
        if latent_avg is not None and latent_avg.numel() >= model.config.w_dim:
            model.mapping.w_avg.copy_(latent_avg.reshape(-1)[: model.config.w_dim])
            w_avg_origin = "stored in the checkpoint"
        else:
            # rosinality's training checkpoints keep no average (its converter copies TensorFlow's
            # dlatent_avg; its generate.py averages 4096 samples): estimate it from fixed samples.
            model.mapping.w_avg.copy_(estimate_w_avg(model, n=W_AVG_SAMPLES))
            w_avg_origin = f"estimated from {W_AVG_SAMPLES:,} random z (the checkpoint stores none)"
    identity = f"stylegan2:{sha256_file(path)[:16]}"
    return StyleGAN2Generator(model, identity=identity, truncation_psi=truncation_psi, window=window,
                              device=device, source=source, w_avg_origin=w_avg_origin)


# ---------------------------------------------------------------------------------------------------
# rosinality layout -> ours


def is_stylegan1_state(obj: Any) -> bool:
    """datasetGAN_release's g_all state dict (g_mapping.* + g_synthesis.*, maybe under DataParallel's module.)."""
    return isinstance(obj, dict) and any(
        isinstance(k, str) and k.removeprefix("module.").startswith("g_synthesis.blocks.4x4.") for k in obj)


def _is_rosinality_generator(sd: Any) -> bool:
    return isinstance(sd, dict) and "input.input" in sd and "conv1.conv.weight" in sd


def _from_rosinality(path: Path, obj: Any) -> tuple[StyleGAN2, torch.Tensor | None]:
    latent_avg = None
    if isinstance(obj, dict) and "g_ema" in obj:
        sd = obj["g_ema"]
        latent_avg = obj.get("latent_avg")
    elif _is_rosinality_generator(obj):
        sd = obj
    else:
        keys = ", ".join(sorted(map(str, obj))[:8]) if isinstance(obj, dict) else type(obj).__name__
        raise _fail(path, f"a PyTorch file, but not a rosinality StyleGAN2 checkpoint (found: {keys})",
                    "expected a dict with 'g_ema' (and optionally 'latent_avg'), or a generator state dict")
    if not _is_rosinality_generator(sd):
        raise _fail(path, "'g_ema' is not a rosinality StyleGAN2 generator state dict (no input.input / conv1)")
    try:
        config, ours = rosinality_to_ours(sd)
    except (KeyError, ValueError, IndexError) as err:
        raise _fail(path, f"rosinality generator with an unexpected layout ({err})")
    return _build(path, config, ours), (latent_avg if isinstance(latent_avg, torch.Tensor) else None)


def rosinality_to_ours(sd: dict[str, torch.Tensor]) -> tuple[StyleGAN2Config, dict[str, torch.Tensor]]:
    """Map rosinality's state-dict names and shapes onto ours, inferring the configuration."""
    n_mlp = len([k for k in sd if re.fullmatch(r"style\.\d+\.weight", k)])
    n_up = len([k for k in sd if re.fullmatch(r"convs\.\d+\.conv\.weight", k)])
    if n_up % 2:
        raise ValueError(f"odd number of synthesis convs ({n_up})")
    num_blocks = n_up // 2 + 1
    resolution = 2 ** (num_blocks + 1)
    channels = [sd["conv1.conv.weight"].shape[1]] + [sd[f"convs.{2 * i}.conv.weight"].shape[1]
                                                    for i in range(num_blocks - 1)]
    z_dim = sd["style.1.weight"].shape[1]
    w_dim = sd["conv1.conv.modulation.weight"].shape[1]
    config = StyleGAN2Config(resolution=resolution, z_dim=z_dim, w_dim=w_dim, mapping_layers=n_mlp,
                             channels=tuple(channels))
    ours: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        ours[f"mapping.fcs.{i}.weight"] = sd[f"style.{i + 1}.weight"]
        ours[f"mapping.fcs.{i}.bias"] = sd[f"style.{i + 1}.bias"]
    ours["blocks.0.const"] = sd["input.input"][0]

    def conv(dst: str, src: str, noise: torch.Tensor):
        ours[f"{dst}.conv.weight"] = sd[f"{src}.conv.weight"][0]
        ours[f"{dst}.conv.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        ours[f"{dst}.conv.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        ours[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].reshape([])
        ours[f"{dst}.bias"] = sd[f"{src}.activate.bias"].reshape(-1)
        ours[f"{dst}.noise_const"] = noise.reshape(noise.shape[-2:])

    def torgb(dst: str, src: str):
        ours[f"{dst}.conv.weight"] = sd[f"{src}.conv.weight"][0]
        ours[f"{dst}.conv.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        ours[f"{dst}.conv.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        ours[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(-1)

    conv("blocks.0.conv1", "conv1", sd["noises.noise_0"])
    torgb("blocks.0.torgb", "to_rgb1")
    for b in range(1, num_blocks):
        conv(f"blocks.{b}.conv0", f"convs.{2 * b - 2}", sd[f"noises.noise_{2 * b - 1}"])
        conv(f"blocks.{b}.conv1", f"convs.{2 * b - 1}", sd[f"noises.noise_{2 * b}"])
        torgb(f"blocks.{b}.torgb", f"to_rgbs.{b - 1}")
    return config, ours


# ---------------------------------------------------------------------------------------------------
# stylegan2-ada layout -> ours


def _from_ada(path: Path, obj: Any) -> tuple[StyleGAN2, torch.Tensor | None]:
    if isinstance(obj, dict) and "G_ema" in obj:
        g = obj["G_ema"]
    elif isinstance(obj, PersistentRecord):
        g = obj
    else:
        found = ", ".join(sorted(map(str, obj))[:8]) if isinstance(obj, dict) else type(obj).__name__
        raise _fail(path, f"a pickle without a 'G_ema' network (found: {found})",
                    "give a stylegan2-ada-pytorch network snapshot (network-snapshot-*.pkl)")
    if not isinstance(g, PersistentRecord):
        raise _fail(path, f"'G_ema' is a {type(g).__name__}, not a stylegan2-ada network record")
    tensors = g.tensors()
    defined = set(g.source_defines)
    for child in g.children().values():
        defined |= set(child.source_defines)
    if "SynthesisInput" in defined or any(k.startswith("synthesis.input.") for k in tensors):
        raise _fail(path, "a StyleGAN3 (alias-free) generator: only StyleGAN2 / StyleGAN2-ADA is supported",
                    "use a StyleGAN2-ADA checkpoint")
    if not any(k.startswith("synthesis.b4.") for k in tensors) or "mapping.w_avg" not in tensors:
        raise _fail(path, f"'G_ema' ({g.class_name}) does not have the StyleGAN2 generator layout",
                    "use a stylegan2-ada-pytorch Generator pickle")
    settings = ada_settings(path, g)
    if int(settings["c_dim"] or 0) > 0 or any(k.startswith("mapping.embed.") for k in tensors):
        raise _fail(path, "a class-conditional generator (c_dim > 0) is not supported",
                    "use an unconditional generator")
    if settings["architecture"] != "skip":
        raise _fail(path, f"synthesis architecture {settings['architecture']!r} is not supported",
                    "only the default 'skip' generator architecture is")
    try:
        config, ours = ada_to_ours(tensors, conv_clamp=settings["conv_clamp"], lr_mul=settings["lr_multiplier"])
    except (KeyError, ValueError, IndexError) as err:
        raise _fail(path, f"stylegan2-ada generator with an unexpected layout ({err})")
    return _build(path, config, ours), tensors["mapping.w_avg"]


_UNSET = object()


def _layer_values(g: PersistentRecord, attribute: str, classes: tuple[str, ...]) -> dict[str, Any]:
    """{layer name: its saved ``attribute``} over the layers of the given classes that carry it."""
    return {name: rec.state[attribute] for name, rec in g.walk()
            if rec.class_name in classes and attribute in rec.state}


def _one_setting(path: Path, name: str, argument: Any, layers: dict[str, Any], default: Any) -> Any:
    """The argument when given, else the value every layer saved, else the class default; layers
    that disagree with each other or with the argument are refused (the file is inconsistent)."""
    values = {repr(v): v for v in layers.values()}
    if len(values) > 1:
        raise _fail(path, f"the layers of 'G_ema' disagree on {name} ({', '.join(sorted(values))})",
                    "only generators whose layers share one setting are supported")
    if argument is not _UNSET:
        if values and not any(v == argument for v in values.values()):
            raise _fail(path, f"'G_ema' was built with {name}={argument!r} but its layers hold "
                        f"{next(iter(values))}", "re-export the network from its training run")
        return argument
    return next(iter(values.values())) if values else default


def ada_settings(path: Path, g: PersistentRecord) -> dict[str, Any]:
    """The generator settings of a ``G_ema`` record, read where the upstream code stores them.

    stylegan2-ada-pytorch builds ``Generator(..., mapping_kwargs, synthesis_kwargs)``; the ``stylegan3``
    repository's ``networks_stylegan2.Generator(..., mapping_kwargs, **synthesis_kwargs)`` takes the
    synthesis settings flat and leaves ``conv_clamp`` to the class default (256) unless ``--fp32``. So
    each setting is taken from the constructor arguments when present, else from the value the layers
    saved in their own state (``conv_clamp`` on SynthesisLayer / ToRGBLayer, ``bias_gain`` = the
    mapping lr multiplier on the mapping's FullyConnectedLayers, ``architecture`` on SynthesisBlock).
    """
    kwargs = g.init_kwargs()
    mapping_kwargs = kwargs.get("mapping_kwargs")
    mapping_kwargs = dict(mapping_kwargs) if isinstance(mapping_kwargs, dict) else {}
    synthesis_kwargs = kwargs.get("synthesis_kwargs")
    synthesis_kwargs = dict(synthesis_kwargs) if isinstance(synthesis_kwargs, dict) else kwargs
    mapping = g.children().get("mapping")
    mapping_fcs = {} if mapping is None else {
        name: rec.state["bias_gain"] for name, rec in mapping.children().items()
        if re.fullmatch(r"fc\d+", name) and "bias_gain" in rec.state}
    clamp = _one_setting(path, "conv_clamp", synthesis_kwargs.get("conv_clamp", _UNSET),
                         _layer_values(g, "conv_clamp", ("SynthesisLayer", "ToRGBLayer")), None)
    lr_mul = _one_setting(path, "the mapping lr_multiplier", mapping_kwargs.get("lr_multiplier", _UNSET),
                          mapping_fcs, 0.01)
    architecture = _one_setting(path, "architecture", synthesis_kwargs.get("architecture", _UNSET),
                                _layer_values(g, "architecture", ("SynthesisBlock",)), "skip")
    return {"conv_clamp": None if clamp is None else float(clamp), "lr_multiplier": float(lr_mul),
            "architecture": architecture, "c_dim": kwargs.get("c_dim", g.state.get("c_dim", 0))}


def ada_to_ours(t: dict[str, torch.Tensor], conv_clamp: float | None = None,
                lr_mul: float = 0.01) -> tuple[StyleGAN2Config, dict[str, torch.Tensor]]:
    """Map stylegan2-ada's G_ema tensor names onto ours, inferring the configuration."""
    n_map = len([k for k in t if re.fullmatch(r"mapping\.fc\d+\.weight", k)])
    resolutions = sorted(int(m.group(1)) for k in t if (m := re.fullmatch(r"synthesis\.b(\d+)\.conv1\.weight", k)))
    if not resolutions or resolutions[0] != 4 or resolutions != [2 ** (i + 2) for i in range(len(resolutions))]:
        raise ValueError(f"synthesis blocks {resolutions}")
    for r in resolutions:
        if f"synthesis.b{r}.torgb.weight" not in t:
            raise ValueError(f"block b{r} has no torgb (not the 'skip' architecture)")
    channels = [t[f"synthesis.b{r}.conv1.weight"].shape[0] for r in resolutions]
    config = StyleGAN2Config(
        resolution=resolutions[-1], z_dim=t["mapping.fc0.weight"].shape[1],
        w_dim=t["synthesis.b4.conv1.affine.weight"].shape[1], mapping_layers=n_map,
        mapping_lr_mul=float(lr_mul), channels=tuple(channels),
        conv_clamp=None if conv_clamp is None else float(conv_clamp))
    ours: dict[str, torch.Tensor] = {}
    for i in range(n_map):
        ours[f"mapping.fcs.{i}.weight"] = t[f"mapping.fc{i}.weight"]
        ours[f"mapping.fcs.{i}.bias"] = t[f"mapping.fc{i}.bias"]
    ours["mapping.w_avg"] = t["mapping.w_avg"]
    for b, r in enumerate(resolutions):
        src = f"synthesis.b{r}"
        if r == 4:
            ours[f"blocks.{b}.const"] = t[f"{src}.const"]
        for conv in ("conv0", "conv1") if r > 4 else ("conv1",):
            ours[f"blocks.{b}.{conv}.conv.weight"] = t[f"{src}.{conv}.weight"]
            ours[f"blocks.{b}.{conv}.conv.affine.weight"] = t[f"{src}.{conv}.affine.weight"]
            ours[f"blocks.{b}.{conv}.conv.affine.bias"] = t[f"{src}.{conv}.affine.bias"]
            ours[f"blocks.{b}.{conv}.noise_strength"] = t[f"{src}.{conv}.noise_strength"].reshape([])
            ours[f"blocks.{b}.{conv}.bias"] = t[f"{src}.{conv}.bias"]
            ours[f"blocks.{b}.{conv}.noise_const"] = t[f"{src}.{conv}.noise_const"]
        ours[f"blocks.{b}.torgb.conv.weight"] = t[f"{src}.torgb.weight"]
        ours[f"blocks.{b}.torgb.conv.affine.weight"] = t[f"{src}.torgb.affine.weight"]
        ours[f"blocks.{b}.torgb.conv.affine.bias"] = t[f"{src}.torgb.affine.bias"]
        ours[f"blocks.{b}.torgb.bias"] = t[f"{src}.torgb.bias"]
    return config, ours


def _build(path: Path, config: StyleGAN2Config, ours: dict[str, torch.Tensor]) -> StyleGAN2:
    return _fill(path, StyleGAN2(config), ours, "StyleGAN2", optional=lambda k: k == "mapping.w_avg")


def _fill(path: Path, model: torch.nn.Module, ours: dict[str, torch.Tensor], kind: str, optional) -> torch.nn.Module:
    """Copy ``ours`` into ``model`` after checking names, shapes and values; ``optional(name)`` marks
    the model's tensors a checkpoint need not hold."""
    expected = model.state_dict()
    problems = [k for k in expected if k not in ours and not optional(k)]
    problems += [f"{k}: {tuple(v.shape)} != {tuple(expected[k].shape)}" for k, v in ours.items()
                 if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if problems:
        raise _fail(path, f"generator tensors do not fit a {kind} of the inferred configuration "
                    f"({'; '.join(problems[:3])})")
    if not all(bool(torch.isfinite(v.float()).all()) for v in ours.values()):
        raise _fail(path, "the generator weights contain NaN or infinite values", "use an intact checkpoint")
    with torch.no_grad():
        for k, v in ours.items():
            expected[k].copy_(v.float())
    return model


# ---------------------------------------------------------------------------------------------------
# datasetGAN_release StyleGAN1 (g_all: g_mapping + g_synthesis) -> ours

AVG_LATENT_NAMES = ("{name}.avg_latent.npy", "avg_latent_stylegan1.npy")  # looked for beside the checkpoint


def stylegan1_to_ours(sd: dict[str, torch.Tensor]):
    """Map the release's g_all state-dict names onto ours, inferring the configuration from shapes."""
    from dgan_al.generators.stylegan1 import StyleGAN1Config

    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    n_map = len([k for k in sd if re.fullmatch(r"g_mapping\.dense\d+\.weight", k)])
    block_re = re.compile(r"g_synthesis\.blocks\.(\d+)x\1\.epi2\.style_mod\.lin\.weight")
    sizes = sorted(int(m.group(1)) for k in sd if (m := block_re.fullmatch(k)))
    if not sizes or sizes != [2 ** (i + 2) for i in range(len(sizes))]:
        raise ValueError(f"synthesis blocks {sizes}")
    channels = [sd["g_synthesis.blocks.4x4.const"].shape[1]] + [
        sd[f"g_synthesis.blocks.{r}x{r}.conv1.weight"].shape[0] for r in sizes[1:]]
    config = StyleGAN1Config(resolution=sizes[-1], z_dim=sd["g_mapping.dense0.weight"].shape[1],
                             w_dim=sd[f"g_mapping.dense{n_map - 1}.weight"].shape[0], mapping_layers=n_map,
                             channels=tuple(channels))
    ours: dict[str, torch.Tensor] = {}
    for i in range(n_map):
        ours[f"mapping.{i}.weight"] = sd[f"g_mapping.dense{i}.weight"]
        ours[f"mapping.{i}.bias"] = sd[f"g_mapping.dense{i}.bias"]
    for b, r in enumerate(sizes):
        src, dst = f"g_synthesis.blocks.{r}x{r}", f"blocks.{b}"
        if r == 4:
            ours[f"{dst}.const"] = sd[f"{src}.const"].reshape(channels[0], 4, 4)
            ours[f"{dst}.const_bias"] = sd[f"{src}.bias"]
            conv1 = "conv"
        else:
            ours[f"{dst}.conv0.weight"] = sd[f"{src}.conv0_up.weight"]
            ours[f"{dst}.conv0.bias"] = sd[f"{src}.conv0_up.bias"]
            conv1 = "conv1"
        ours[f"{dst}.conv1.weight"] = sd[f"{src}.{conv1}.weight"]
        ours[f"{dst}.conv1.bias"] = sd[f"{src}.{conv1}.bias"]
        for theirs, mine in (("epi1", "epi0"), ("epi2", "epi1")):
            ours[f"{dst}.{mine}.noise_weight"] = sd[f"{src}.{theirs}.top_epi.noise.weight"]
            ours[f"{dst}.{mine}.style.weight"] = sd[f"{src}.{theirs}.style_mod.lin.weight"]
            ours[f"{dst}.{mine}.style.bias"] = sd[f"{src}.{theirs}.style_mod.lin.bias"]
    ours["torgb.weight"] = sd["g_synthesis.torgb.weight"]
    ours["torgb.bias"] = sd["g_synthesis.torgb.bias"]
    return config, ours


def read_average_latent(path: Path, num_ws: int, w_dim: int) -> torch.Tensor:
    """The release's avg_latent_stylegan1.npy ([18, 512]: make_mean_latent's rows) as [num_ws, w_dim]."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"not a readable .npy average latent ({err})", path=path,
                        fix="give the avg_latent_stylegan1.npy that came with the checkpoint's data") from None
    t = torch.from_numpy(np.asarray(arr, dtype=np.float32)).squeeze(0) if arr.ndim == 3 else \
        torch.from_numpy(np.asarray(arr, dtype=np.float32))
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != w_dim or t.shape[0] not in (1,) and t.shape[0] < num_ws:
        raise UserError(f"average latent of shape {list(arr.shape)} does not fit a {w_dim}-d generator with "
                        f"{num_ws} w+ rows", path=path, fix="expected [18, 512] (or [512]) as the release saves it")
    if not bool(torch.isfinite(t).all()):
        raise UserError("the average latent contains NaN or infinite values", path=path)
    return t.expand(num_ws, -1).clone() if t.shape[0] == 1 else t[:num_ws].clone()


def stylegan1_average_latent_file(path: Path) -> Path | None:
    """The average-latent file beside a StyleGAN1 checkpoint, if there is one."""
    for pattern in AVG_LATENT_NAMES:
        candidate = path.with_name(pattern.format(name=path.name))
        if candidate.is_file():
            return candidate
    return None


def _load_stylegan1(path: Path, sd: dict, truncation_psi: float, window, device):
    from dgan_al.generators.stylegan1 import StyleGAN1, StyleGAN1Generator, estimate_w_avg

    try:
        config, ours = stylegan1_to_ours(sd)
    except (KeyError, ValueError, IndexError, AttributeError) as err:
        raise _fail(path, f"a datasetGAN StyleGAN1 state dict with an unexpected layout ({err})",
                    "give the *.for_g_all.pt file of datasetGAN_release") from None
    model = _fill(path, StyleGAN1(config), ours, "StyleGAN1", optional=lambda k: k == "w_avg" or k.endswith(".noise"))
    avg_file = stylegan1_average_latent_file(path)
    with torch.no_grad():
        if avg_file is not None:
            model.w_avg.copy_(read_average_latent(avg_file, config.num_ws, config.w_dim))
            origin = f"from {avg_file.name}"
        else:
            model.w_avg.copy_(estimate_w_avg(model, n=W_AVG_SAMPLES))
            origin = (f"estimated from {W_AVG_SAMPLES:,} random z (no {AVG_LATENT_NAMES[0].format(name=path.name)} "
                      f"or {AVG_LATENT_NAMES[1]} beside the checkpoint)")
    identity = f"stylegan1:{sha256_file(path)[:16]}"
    if avg_file is not None:  # the average latent changes the truncated images: part of the identity
        identity += f"+avg:{sha256_file(avg_file)[:8]}"
    return StyleGAN1Generator(model, identity=identity, truncation_psi=truncation_psi, window=window, device=device,
                              source="datasetGAN_release StyleGAN1 (g_all state dict)", w_avg_origin=origin)

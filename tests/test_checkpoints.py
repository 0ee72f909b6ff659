"""Loading the checkpoints users have: rosinality .pt and stylegan2-ada .pkl, and refusing everything else
without running any code from the file."""

import io
import os
import pickle
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.errors import UserError
from dgan_al.generators import load_generator
from dgan_al.generators.checkpoints import detect_format
from stylegan2_formats import (
    fake_modules,
    generator_kwargs,
    nvidia_generator,
    random_rosinality_discriminator,
    random_rosinality_state,
    reference_forward,
    reference_mapping,
    rosinality_to_ada_tensors,
    write_nvidia_pickle,
    write_rosinality_converted,
    write_rosinality_training,
)

CFG = dict(size=32, style_dim=16, n_mlp=2, channels={4: 24, 8: 16, 16: 12, 32: 8})
runner = CliRunner()


def reference_images(gen, sd, n_mlp, lr_mul=0.01, conv_clamp=None):
    """The independent reference's uint8 images and feature taps for two latents of ``gen``."""
    z = gen.sample_latents(2, seed=3)
    w = reference_mapping(sd, z, n_mlp, lr_mul)
    img, feats = reference_forward(sd, w[:, None].expand(-1, gen.config.num_ws, -1), CFG["size"],
                                   conv_clamp=conv_clamp)
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1), feats


def check_matches_reference(gen, sd, n_mlp, lr_mul=0.01, conv_clamp=None):
    """Our generator equals the independent reference; returns the reference feature taps."""
    out = gen.synthesize(gen.sample_latents(2, seed=3))
    ref_u8, ref_feats = reference_images(gen, sd, n_mlp, lr_mul, conv_clamp)
    assert (out.images.int() - ref_u8.int()).abs().max() <= 1
    for ours, ref in zip(out.features, ref_feats):
        assert torch.allclose(ours, ref.expand_as(ours), rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    return ref_feats


def test_rosinality_converted_checkpoint(tmp_path):
    sd = random_rosinality_state(**CFG)
    latent_avg = torch.randn(16)
    path = tmp_path / "car-32.pt"
    write_rosinality_converted(path, sd, latent_avg, g=random_rosinality_state(**CFG, seed=9),
                               d=random_rosinality_discriminator())
    assert detect_format(path) == "torch-zip"
    gen = load_generator(str(path))
    assert gen.config.resolution == 32 and gen.config.mapping_layers == 2
    assert gen.config.channels == (24, 16, 12, 8)
    assert torch.equal(gen.model.mapping.w_avg, latent_avg)
    assert gen.identity.startswith("stylegan2:")
    assert gen.describe()["average w (w_avg)"] == "stored in the checkpoint"
    check_matches_reference(gen, sd, 2)  # g_ema, not the training-time g


@pytest.mark.slow
def test_rosinality_training_checkpoint_with_args_and_optimisers(tmp_path):
    g_ema, g = random_rosinality_state(**CFG, seed=4), random_rosinality_state(**CFG, seed=10)
    path = tmp_path / "100000.pt"
    write_rosinality_training(path, g=g, g_ema=g_ema, d=random_rosinality_discriminator(), size=32, n_mlp=2,
                              latent=16)
    gen = load_generator(str(path))
    # no latent_avg in training checkpoints: w_avg is the mean w of 10k fixed z, and inspect says so
    z = gen.sample_latents(10_000, seed=123)
    assert torch.allclose(gen.model.mapping.w_avg, reference_mapping(g_ema, z, 2).mean(0), atol=1e-4)
    assert gen.describe()["average w (w_avg)"].startswith("estimated from 10,000 random z")
    check_matches_reference(gen, g_ema, 2)
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 0 and "estimated from 10,000" in result.output


def test_rosinality_legacy_serialisation_and_bare_state_dict(tmp_path):
    sd = random_rosinality_state(**CFG, seed=5)
    path = tmp_path / "legacy.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    assert detect_format(path) == "torch-legacy"
    check_matches_reference(load_generator(str(path)), sd, 2)


def nvidia_pickle(tmp_path, flavour, sd, n_mlp=2, seed=6, name="network-snapshot-000100.pkl", **kwargs_extra):
    """A training-loop snapshot of ``sd``'s weights as ``flavour``'s code writes it; returns (path, tensors)."""
    tensors = rosinality_to_ada_tensors(sd, 32, n_mlp)
    tensors["mapping.w_avg"] = torch.randn(16, generator=torch.Generator().manual_seed(seed))
    kwargs = generator_kwargs(flavour, z_dim=16, w_dim=16, num_layers=n_mlp, channel_base=512, channel_max=24,
                              **kwargs_extra)
    g_ema = nvidia_generator(tensors, flavour, 16, 16, 32, kwargs)
    other = rosinality_to_ada_tensors(random_rosinality_state(**dict(CFG, n_mlp=n_mlp), seed=seed + 50), 32, n_mlp)
    other["mapping.w_avg"] = torch.zeros(16)
    path = tmp_path / name
    write_nvidia_pickle(path, g_ema, g=nvidia_generator(other, flavour, 16, 16, 32, kwargs), flavour=flavour)
    return path, tensors


@pytest.mark.parametrize("flavour,n_mlp,options,clamp", [
    ("ada", 2, {}, 256.0),                         # train.py default: conv_clamp=256 in synthesis_kwargs
    ("ada", 8, {"fp32": True}, None),              # --fp32: conv_clamp=None
    ("stylegan3", 2, {}, 256.0),                   # not in the arguments: SynthesisBlock's class default
    ("stylegan3", 2, {"fp32": True}, None),        # --fp32 puts conv_clamp=None in the flat arguments
])
def test_nvidia_pickle(tmp_path, flavour, n_mlp, options, clamp):
    sd = random_rosinality_state(**dict(CFG, n_mlp=n_mlp), seed=6)
    path, tensors = nvidia_pickle(tmp_path, flavour, sd, n_mlp, **options)
    assert detect_format(path) == "pickle"
    gen = load_generator(str(path))
    assert gen.config.mapping_layers == n_mlp and gen.config.conv_clamp == clamp
    assert gen.config.mapping_lr_mul == 0.01
    assert torch.equal(gen.model.mapping.w_avg, tensors["mapping.w_avg"])
    check_matches_reference(gen, sd, n_mlp, conv_clamp=clamp)  # G_ema, not G


def test_binding_clamp_from_the_arguments(tmp_path):
    """A user's conv_clamp=1 in synthesis_kwargs: images differ from the unclamped computation by a lot,
    and match the clamped reference."""
    sd = random_rosinality_state(**CFG, seed=11)
    path, _ = nvidia_pickle(tmp_path, "ada", sd, conv_clamp=1)
    gen = load_generator(str(path))
    assert gen.config.conv_clamp == 1.0
    ref_feats = check_matches_reference(gen, sd, 2, conv_clamp=1)
    unclamped, _ = reference_images(gen, sd, 2, conv_clamp=None)
    ours = gen.synthesize(gen.sample_latents(2, seed=3)).images
    assert (ours.int() - unclamped.int()).abs().max() > 64
    conv_taps = torch.cat([f.flatten() for f in ref_feats[1:]])
    assert (conv_taps.abs() == 1).float().mean() > 0.01  # some conv outputs sit at exactly +-1
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 0 and "conv clamp" in result.output
    assert any("conv clamp" in line and line.split("│")[-2].strip() == "1" for line in result.output.splitlines())


def test_binding_clamp_from_the_layers(tmp_path):
    """stylegan3-repository pickle: the clamp is the class default 256, held only by each layer's state.
    Biases of +-400 in one layer make it bind."""
    sd = random_rosinality_state(**CFG, seed=12)
    sd["convs.1.activate.bias"] = torch.linspace(-400, 400, sd["convs.1.activate.bias"].numel())
    path, _ = nvidia_pickle(tmp_path, "stylegan3", sd)
    gen = load_generator(str(path))
    assert gen.config.conv_clamp == 256.0
    check_matches_reference(gen, sd, 2, conv_clamp=256)
    _, unclamped = reference_images(gen, sd, 2, conv_clamp=None)
    feats = gen.synthesize(gen.sample_latents(2, seed=3)).features
    assert float(feats[3].abs().max()) == 256.0 and float(unclamped[3].abs().max()) > 300
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 0 and "256" in result.output


def test_mapping_lr_multiplier_from_the_arguments(tmp_path):
    """legacy.py's TensorFlow conversion passes lr_multiplier in mapping_kwargs; it must be applied."""
    sd = random_rosinality_state(**CFG, seed=13, lr_mlp=0.05)
    tensors = rosinality_to_ada_tensors(sd, 32, 2)
    tensors["mapping.w_avg"] = torch.zeros(16)
    kwargs = generator_kwargs("ada", z_dim=16, w_dim=16, num_layers=2, channel_base=512, channel_max=24)
    kwargs["mapping_kwargs"]["lr_multiplier"] = 0.05
    path = tmp_path / "converted.pkl"
    write_nvidia_pickle(path, nvidia_generator(tensors, "ada", 16, 16, 32, kwargs))
    gen = load_generator(str(path))
    assert gen.config.mapping_lr_mul == 0.05
    check_matches_reference(gen, sd, 2, lr_mul=0.05, conv_clamp=256)


def test_cli_inspects_an_ada_pickle(tmp_path):
    sd = random_rosinality_state(**CFG, seed=8)
    path, _ = nvidia_pickle(tmp_path, "ada", sd, name="network-snapshot-000200.pkl")
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 0, result.output
    assert "stylegan2-ada" in result.output and str(24 + 24 + 16 * 2 + 12 * 2 + 8 * 2) in result.output
    assert "256" in result.output and "stored in the checkpoint" in result.output


def test_persistence_record_source_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    source = f"open({str(marker)!r}, 'w').write('ran')\nclass Generator:\n    pass\n"
    sd = random_rosinality_state(**CFG, seed=7)
    tensors = rosinality_to_ada_tensors(sd, 32, 2)
    tensors["mapping.w_avg"] = torch.zeros(16)
    kwargs = generator_kwargs("ada", z_dim=16, w_dim=16, num_layers=2, channel_base=512, channel_max=24)
    path = tmp_path / "evil-source.pkl"
    write_nvidia_pickle(path, nvidia_generator(tensors, "ada", 16, 16, 32, kwargs, module_src=source))
    gen = load_generator(str(path))  # loads the weights, never the source
    assert gen.config.resolution == 32
    assert not marker.exists()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_reduce_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(marker)}))
    with pytest.raises(UserError, match="posix.system|os.system|refused"):
        load_generator(str(path))
    assert not marker.exists()
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 2
    assert "refused" in result.output and len(result.output.strip().splitlines()) == 1
    assert not marker.exists()


def test_malicious_torch_file_is_refused_naming_the_global(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": _Evil(marker)}, path)
    with pytest.raises(UserError, match=r"refused to load: the file holds `(posix|os|nt)\.system`"):
        load_generator(str(path))
    assert not marker.exists()
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 2 and "system`" in result.output and "documentation" not in result.output
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 1])
def test_old_protocol_pickle_is_refused_clearly(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(marker)}, protocol=protocol))
    assert detect_format(path) == "pickle-protocol-0"
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 2 and "protocol 0/1" in result.output
    assert "neither" not in result.output and not marker.exists()


def stylegan3_t_record(tensors, source):
    """A networks_stylegan3 Generator: flat tensors nested into records (only names matter here)."""
    from stylegan2_formats import PersistentModule

    root = PersistentModule("stylegan3", "Generator", (), {}, source)
    for key, value in tensors.items():
        node = root
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.state["_modules"].get(part)
            if child is None:
                child = PersistentModule("stylegan3", part, (), {}, source)
                node.module(part, child)
            node = child
        (node.buffer if leaf == "w_avg" else node.param)(leaf, value)
    return root


def test_stylegan3_pickle_is_refused(tmp_path):
    tensors = {"mapping.fc0.weight": torch.randn(16, 16), "mapping.fc0.bias": torch.zeros(16),
               "mapping.w_avg": torch.zeros(16), "synthesis.input.weight": torch.randn(8, 4),
               "synthesis.input.freqs": torch.randn(8, 2), "synthesis.L0_36_512.weight": torch.randn(8, 8, 3, 3)}
    source = "class SynthesisInput(torch.nn.Module):\n    pass\nclass SynthesisLayer:\n    pass\n"
    path = tmp_path / "stylegan3-t.pkl"
    write_nvidia_pickle(path, stylegan3_t_record(tensors, source), flavour="stylegan3")
    with pytest.raises(UserError, match="StyleGAN3"):
        load_generator(str(path))
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 2 and "StyleGAN3" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_tensorflow_pickle_is_refused(tmp_path):
    class Network:
        def __reduce__(self):
            return (Network, ())

    path = tmp_path / "stylegan2-car-config-f.pkl"
    with fake_modules(dnnlib__tflib__network={"Network": Network}):
        path.write_bytes(pickle.dumps((Network(), Network(), Network())))
    with pytest.raises(UserError, match="TensorFlow"):
        load_generator(str(path))
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 2 and "TensorFlow" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\x80\x04\x95garbage", b"PK\x03\x04trunc"])
def test_garbage_and_truncated_files(tmp_path, content):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_generator(str(path))
    assert str(path) in str(err.value)


def test_truncated_real_checkpoint(tmp_path):
    path = tmp_path / "cut.pt"
    buf = io.BytesIO()
    torch.save({"g_ema": random_rosinality_state(**CFG)}, buf)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(UserError):
        load_generator(str(path))


def test_foreign_torch_file(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"fc.weight": torch.randn(2, 2)}, path)
    with pytest.raises(UserError, match="not a rosinality"):
        load_generator(str(path))


def test_cli_inspect_generator(tmp_path):
    sd = random_rosinality_state(**CFG)
    path = tmp_path / "g.pt"
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(16)}, path)
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 0, result.output
    assert "rosinality" in result.output and "feature width" in result.output
    assert str(24 + 24 + 16 * 2 + 12 * 2 + 8 * 2) in result.output
    result = runner.invoke(app, ["inspect-generator", str(path), "--crop", "4,0,24"])
    assert result.exit_code == 2 and "top,left,height,width" in result.output
    result = runner.invoke(app, ["inspect-generator", str(path), "--crop", "4,0,40,32"])
    assert result.exit_code == 2


def test_console_script_help_and_version():
    out = subprocess.run([sys.executable, "-m", "dgan_al", "--help"], capture_output=True, text=True, check=True)
    assert "inspect-generator" in out.stdout
    out = subprocess.run([sys.executable, "-m", "dgan_al", "--version"], capture_output=True, text=True, check=True)
    assert "dgan-al" in out.stdout

"""Loading the checkpoints users have: rosinality .pt and stylegan2-ada .pkl, and refusing everything else
without running any code from the file."""

import argparse
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
    ada_records,
    fake_modules,
    random_rosinality_state,
    reference_forward,
    reference_mapping,
    rosinality_to_ada_tensors,
    write_ada_pickle,
)

CFG = dict(size=32, style_dim=16, n_mlp=2, channels={4: 24, 8: 16, 16: 12, 32: 8})
runner = CliRunner()


def check_matches_reference(gen, sd, n_mlp, lr_mul=0.01, conv_clamp=None):
    """Our generator equals the independent reference; returns the reference feature taps."""
    z = gen.sample_latents(2, seed=3)
    out = gen.synthesize(z)
    w = reference_mapping(sd, z, n_mlp, lr_mul)
    ref_img, ref_feats = reference_forward(sd, w[:, None].expand(-1, gen.config.num_ws, -1), CFG["size"],
                                           conv_clamp=conv_clamp)
    ref_u8 = (ref_img * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert (out.images.int() - ref_u8.int()).abs().max() <= 1
    for ours, ref in zip(out.features, ref_feats):
        assert torch.allclose(ours, ref.expand_as(ours), rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    return ref_feats


def test_rosinality_converted_checkpoint(tmp_path):
    sd = random_rosinality_state(**CFG)
    latent_avg = torch.randn(16)
    path = tmp_path / "car-32.pt"
    torch.save({"g_ema": sd, "latent_avg": latent_avg}, path)
    assert detect_format(path) == "torch-zip"
    gen = load_generator(str(path))
    assert gen.config.resolution == 32 and gen.config.mapping_layers == 2
    assert gen.config.channels == (24, 16, 12, 8)
    assert torch.equal(gen.model.mapping.w_avg, latent_avg)
    assert gen.identity.startswith("stylegan2:")
    check_matches_reference(gen, sd, 2)


def test_rosinality_training_checkpoint_with_args_and_optimisers(tmp_path):
    sd = random_rosinality_state(**CFG, seed=4)
    g = torch.nn.Linear(3, 3)
    ckpt = {"g": sd, "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1)}, "g_ema": sd,
            "g_optim": torch.optim.Adam(g.parameters()).state_dict(),
            "d_optim": torch.optim.Adam(g.parameters()).state_dict(),
            "args": argparse.Namespace(size=32, channel_multiplier=2, n_mlp=2, latent=16)}
    path = tmp_path / "100000.pt"
    torch.save(ckpt, path)
    gen = load_generator(str(path))
    # no latent_avg in training checkpoints: w_avg is estimated from random samples
    assert gen.model.mapping.w_avg.abs().sum() > 0
    check_matches_reference(gen, sd, 2)


def test_rosinality_legacy_serialisation_and_bare_state_dict(tmp_path):
    sd = random_rosinality_state(**CFG, seed=5)
    path = tmp_path / "legacy.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    assert detect_format(path) == "torch-legacy"
    check_matches_reference(load_generator(str(path)), sd, 2)


@pytest.mark.parametrize("n_mlp,conv_clamp", [(2, 256), (2, 0.5), (8, None)])
def test_ada_pickle(tmp_path, n_mlp, conv_clamp):
    cfg = dict(CFG, n_mlp=n_mlp)
    sd = random_rosinality_state(**cfg, seed=6)
    tensors = rosinality_to_ada_tensors(sd, 32, n_mlp)
    tensors["mapping.w_avg"] = torch.randn(16)
    kwargs = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                  mapping_kwargs=dict(num_layers=n_mlp), synthesis_kwargs=dict(
                      channel_base=512, channel_max=24, conv_clamp=conv_clamp, architecture="skip"))
    path = tmp_path / "network-snapshot-000100.pkl"
    write_ada_pickle(path, ada_records(tensors, init_kwargs=kwargs))
    assert detect_format(path) == "pickle"
    gen = load_generator(str(path))
    assert gen.config.mapping_layers == n_mlp and gen.config.conv_clamp == conv_clamp
    assert torch.equal(gen.model.mapping.w_avg, tensors["mapping.w_avg"])
    ref_feats = check_matches_reference(gen, sd, n_mlp, conv_clamp=conv_clamp)
    if conv_clamp == 0.5:  # a clamp that binds: conv outputs sit at exactly +-0.5 (after the sqrt 2 gain)
        conv_taps = torch.cat([f.flatten() for f in ref_feats[1:]])
        assert (conv_taps.abs() == 0.5).float().mean() > 0.05


def test_cli_inspects_an_ada_pickle(tmp_path):
    sd = random_rosinality_state(**CFG, seed=8)
    tensors = rosinality_to_ada_tensors(sd, 32, 2)
    tensors["mapping.w_avg"] = torch.zeros(16)
    path = tmp_path / "network-snapshot-000200.pkl"
    write_ada_pickle(path, ada_records(tensors))
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 0, result.output
    assert "stylegan2-ada" in result.output and str(24 + 24 + 16 * 2 + 12 * 2 + 8 * 2) in result.output


def test_persistence_record_source_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    source = f"open({str(marker)!r}, 'w').write('ran')\nclass Generator:\n    pass\n"
    sd = random_rosinality_state(**CFG, seed=7)
    tensors = rosinality_to_ada_tensors(sd, 32, 2)
    tensors["mapping.w_avg"] = torch.zeros(16)
    path = tmp_path / "evil-source.pkl"
    write_ada_pickle(path, ada_records(tensors, module_src=source))
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


def test_malicious_torch_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": _Evil(marker)}, path)
    with pytest.raises(UserError, match="refused"):
        load_generator(str(path))
    assert not marker.exists()


def test_stylegan3_pickle_is_refused(tmp_path):
    tensors = {"mapping.fc0.weight": torch.randn(16, 16), "mapping.fc0.bias": torch.zeros(16),
               "mapping.w_avg": torch.zeros(16), "synthesis.input.weight": torch.randn(8, 4),
               "synthesis.input.freqs": torch.randn(8, 2), "synthesis.L0_36_512.weight": torch.randn(8, 8, 3, 3)}
    source = "class SynthesisInput(torch.nn.Module):\n    pass\nclass SynthesisLayer:\n    pass\n"
    path = tmp_path / "stylegan3-t.pkl"
    write_ada_pickle(path, ada_records(tensors, module_src=source))
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

"""The ADM UNet's state-dict layout against guided-diffusion's, and the checkpoint reader with its refusals.

The expected key list below is derived by hand from upstream's ``UNetModel.__init__`` for one tiny config
(32 px, num_channels 32, num_res_blocks 1, channel_mult 1,2, attention at 16 px = ds 2), not from our
module; the checkpoints written here carry those upstream names with random tensors.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from dgan_al.errors import UserError
from dgan_al.generators.adm import UNetConfig, UNetModel, load_adm_checkpoint
from dgan_al.generators.adm.unet import AttentionBlock

from adm_formats import EMB, FLAGS, random_state, upstream_layout, write_checkpoint

def tiny(**kw) -> UNetConfig:
    base = dict(image_size=32, num_channels=32, num_res_blocks=1, channel_mult=(1, 2), attention_resolutions=(16,),
                num_head_channels=32, use_scale_shift_norm=True)
    return UNetConfig(**(base | kw))


@pytest.mark.parametrize("scale_shift,updown,learn_sigma", [(True, False, False), (False, True, True)])
def test_state_dict_equals_upstream_layout(scale_shift, updown, learn_sigma):
    model = UNetModel(tiny(use_scale_shift_norm=scale_shift, resblock_updown=updown, learn_sigma=learn_sigma))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == upstream_layout(scale_shift=scale_shift, updown=updown, learn_sigma=learn_sigma)


def reference_attention(qkv: torch.Tensor, heads: int, new_order: bool) -> torch.Tensor:
    """Upstream's QKVAttention / QKVAttentionLegacy, written out with its einsums."""
    bs, width, length = qkv.shape
    ch = width // (3 * heads)
    if new_order:
        q, k, v = (p.reshape(bs * heads, ch, length) for p in qkv.chunk(3, dim=1))
    else:
        q, k, v = qkv.reshape(bs * heads, ch * 3, length).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
    return torch.einsum("bts,bcs->bct", weight, v).reshape(bs, -1, length)


@pytest.mark.parametrize("new_order", [False, True])
def test_attention_orders_match_upstream_formulas(new_order):
    torch.manual_seed(0)
    block = AttentionBlock(64, num_heads=4, num_head_channels=-1, new_order=new_order)
    torch.nn.init.normal_(block.proj_out.weight)
    x = torch.randn(2, 64, 4, 4)
    flat = x.reshape(2, 64, 16)
    expected = flat + block.proj_out(reference_attention(block.qkv(block.norm(flat)), 4, new_order))
    assert torch.allclose(block(x), expected.reshape(2, 64, 4, 4), atol=1e-5)
    other = AttentionBlock(64, num_heads=4, num_head_channels=-1, new_order=not new_order)
    other.load_state_dict(block.state_dict())
    assert not torch.allclose(other(x), block(x), atol=1e-3)  # the two orders are different models


# --- the checkpoint reader -------------------------------------------------------------------------

@pytest.mark.parametrize("scale_shift,updown,learn_sigma", [(True, False, False), (False, True, True)])
def test_reads_upstream_named_checkpoint_and_infers_architecture(tmp_path, scale_shift, updown, learn_sigma):
    state = random_state(scale_shift=scale_shift, updown=updown, learn_sigma=learn_sigma)
    flags = {"image_size": 32, "num_head_channels": 32, "use_new_attention_order": "True",
             "attention_resolutions": "16,8"}  # 8 px is past the deepest level: no effect, as upstream
    config, model = load_adm_checkpoint(write_checkpoint(tmp_path, state, flags))
    u = config.unet
    assert (u.num_channels, u.num_res_blocks, tuple(u.channel_mult)) == (32, 1, (1, 2))
    assert (u.learn_sigma, u.use_scale_shift_norm, u.resblock_updown) == (learn_sigma, scale_shift, updown)
    assert u.attention_ds == {2, 4} and u.use_new_attention_order is True
    assert (config.diffusion_steps, config.noise_schedule, config.rescale_timesteps) == (1000, "linear", False)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert model(torch.zeros(1, 3, 32, 32), torch.tensor([10])).shape == (1, 6 if learn_sigma else 3, 32, 32)


def test_default_channel_mult_for_image_size(tmp_path):
    model = UNetModel(UNetConfig(image_size=64, num_channels=32, num_res_blocks=1, channel_mult=(1, 2, 3, 4),
                                 attention_resolutions=(8,), num_heads=2))
    flags = {"image_size": 64, "channel_mult": "", "attention_resolutions": "8", "num_heads": 2}
    config, _ = load_adm_checkpoint(write_checkpoint(tmp_path, model.state_dict(), flags))
    assert config.unet.channel_mult == (1, 2, 3, 4) and config.unet.attention_ds == {8}
    bad = flags | {"image_size": 128}  # "" at 128 px means 1,1,2,3,4: the tensors say otherwise
    with pytest.raises(UserError, match="channel_mult"):
        load_adm_checkpoint(write_checkpoint(tmp_path, model.state_dict(), bad | {"attention_resolutions": "16"}))


@pytest.mark.parametrize("key,value", [
    ("num_channels", 64), ("num_res_blocks", 2), ("channel_mult", "1,1"), ("learn_sigma", True),
    ("use_scale_shift_norm", False), ("resblock_updown", "True"), ("attention_resolutions", "32,16"),
])
def test_json_contradicting_tensors_is_refused_naming_key(tmp_path, key, value):
    path = write_checkpoint(tmp_path, random_state(), FLAGS | {key: value})
    with pytest.raises(UserError, match=key) as err:
        load_adm_checkpoint(path)
    assert "tensors say" in str(err.value) and str(err.value).count("\n") == 0


@pytest.mark.parametrize("flags,match", [
    (None, "missing"),
    ({k: v for k, v in FLAGS.items() if k != "image_size"}, "image_size"),
    ({k: v for k, v in FLAGS.items() if k != "num_head_channels"}, "num_head_channels"),
    (FLAGS | {"num_channel": 32}, "unknown key 'num_channel'"),
    (FLAGS | {"class_cond": True}, "class-conditional"),
    (FLAGS | {"timestep_respacing": "250"}, "timestep_respacing"),
    (FLAGS | {"learn_sigma": "maybe"}, "learn_sigma"),
    (FLAGS | {"noise_schedule": "sqrt"}, "noise_schedule"),
    (FLAGS | {"num_head_channels": 24}, "num_head_channels 24"),
    ([1, 2], "JSON object"),
])
def test_bad_json_is_refused(tmp_path, flags, match):
    path = write_checkpoint(tmp_path, random_state(), flags)
    with pytest.raises(UserError, match=match):
        load_adm_checkpoint(path)


class NotData:
    pass


@pytest.mark.parametrize("content,match", [
    ("text", "not a PyTorch checkpoint"),
    ([torch.zeros(1)], "not a state dict"),
    ({"g_ema": {"style.1.weight": torch.zeros(1)}, "latent_avg": torch.zeros(1)}, "StyleGAN"),
    ({"conv1.weight": torch.zeros(1)}, "not a guided-diffusion UNet state dict"),
    ({"model": {"input_blocks.0.0.weight": torch.zeros(1)}}, "not a bare state dict"),
    ("pickle", "beyond tensors"),
    ("label_emb", "class-conditional"),
])
def test_foreign_files_are_refused(tmp_path, content, match):
    path = tmp_path / "adm.pt"
    if content == "text":
        path.write_text("not a checkpoint")
    elif content == "pickle":
        torch.save({"x": NotData()}, path)
    elif content == "label_emb":
        torch.save(random_state() | {"label_emb.weight": torch.zeros(1000, EMB)}, path)
    else:
        torch.save(content, path)
    (tmp_path / "adm.pt.json").write_text(json.dumps(FLAGS))
    with pytest.raises(UserError, match=match) as err:
        load_adm_checkpoint(path)
    assert str(err.value).startswith(str(path))


@pytest.mark.parametrize("key,match", [("output_blocks.0.1.qkv.bias", "do not form one guided-diffusion UNet"),
                                       ("input_blocks.3.0.emb_layers.1.weight", "no tensor"),
                                       ("output_blocks.3.0.in_layers.0.weight", "do not form levels")])
def test_incomplete_state_dict_is_refused(tmp_path, key, match):
    state = random_state()
    if key.startswith("output_blocks.3"):
        state = {k: v for k, v in state.items() if not k.startswith("output_blocks.3.")}
    else:
        del state[key]
    with pytest.raises(UserError, match=match):
        load_adm_checkpoint(write_checkpoint(tmp_path, state))


def test_inspect_generator_prints_what_was_read(tmp_path):
    """``dgan-al inspect-generator adm.pt`` (flags in adm.pt.json): the architecture, the diffusion settings and
    the decoder blocks' shapes; a contradicting flag ends in one line, exit 2."""
    from typer.testing import CliRunner

    from dgan_al.cli import app

    path = write_checkpoint(tmp_path, random_state())
    result = CliRunner().invoke(app, ["inspect-generator", str(path)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "guided-diffusion (ADM) UNet adm.pt" in result.output
    assert "num_res_blocks" in result.output and "noise_schedule" in result.output
    assert "decoder blocks" in result.output and "default features" in result.output
    bad = write_checkpoint(tmp_path, random_state(), flags=FLAGS | {"learn_sigma": not FLAGS.get("learn_sigma", False)},
                           name="bad.pt")
    result = CliRunner().invoke(app, ["inspect-generator", str(bad)])
    assert result.exit_code == 2 and "learn_sigma" in result.output and "Traceback" not in result.output

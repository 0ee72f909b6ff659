"""import-datasetgan: a datasetGAN_release folder (in the layout its make_training_data.py /
train_interpreter.py write and read) becomes workspace annotations; foreign images are refused."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.errors import UserError
from dgan_al.generators import load_generator
from dgan_al.workflows.import_datasetgan import DatasetGANImport, convert_test_set, import_datasetgan
from dgan_al.workflows.init import init_workspace
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace
from stylegan1_formats import random_release_state
from dgan_al.workspace.config import CONFIG_NAME, load_config, render_config
from workspaces import SMALL, snapshot

runner = CliRunner()
CLASSES = ["background", "body", "wheel", "mirror"]


def release_files(tmp_path, n=5, seed=0):
    """A StyleGAN1 checkpoint + avg latent, and a training-data folder made as the release makes it:
    images from z rows rendered with fresh random noise (PIL JPEG, default quality), masks as .npy."""
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    ckpt = ckpt_dir / "karras2019stylegan-cars-64.for_g_all.pt"
    sd = random_release_state(64, fmap_base=128, fmap_max=16, seed=seed)
    for key in [k for k in sd if k.endswith("top_epi.noise.weight")]:
        sd[key] = sd[key] * 0.2  # noise of a trained model's size: it changes details, not the picture
    torch.save(sd, ckpt, _use_new_zipfile_serialization=False)
    avg = np.random.default_rng(seed).standard_normal((1, 512)).astype(np.float32).repeat(18, 0) * 0.3
    latent_dir = tmp_path / "training_latent"
    latent_dir.mkdir()
    np.save(latent_dir / "avg_latent_stylegan1.npy", avg)
    np.save(ckpt_dir / f"{ckpt.name}.avg_latent.npy", avg)  # where our loader reads it
    z = np.random.default_rng(seed + 1).standard_normal((n, 512))  # float64, like np.random.randn
    np.save(latent_dir / "latent_stylegan1.npy", z)
    gen = load_generator(str(ckpt), truncation_psi=0.7)
    rng = torch.Generator().manual_seed(seed + 2)
    gen.model.set_noise([torch.randn(m.shape, generator=rng)
                         for b in gen.model.blocks for m in (b.epi0.noise, b.epi1.noise)])
    images = gen.synthesize(torch.from_numpy(z).float()).images.numpy()
    data = tmp_path / "training_data"
    data.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(data / f"image_{i}.jpg")
        mask = np.where(image.mean(axis=2) > 128, 1, 0).astype(np.uint8)
        mask[-12:, -12:] = 2
        mask[:3, :3] = 3  # a 9-pixel class: the release's clean-up turns it into background
        np.save(data / f"image_mask{i}.npy", mask)
    return ckpt, data, latent_dir


def small_workspace(tmp_path, ckpt):
    root = tmp_path / "ws"
    init_workspace(root, generator_spec=str(ckpt), classes=CLASSES, pool_size=48, truncation_psi=0.7)
    config = load_config(root / CONFIG_NAME)
    for key, value in SMALL.items():  # the tiny ensemble and round of the toy-faces test workspaces
        section, name = key.split(".")
        setattr(getattr(config, section), name, value)
    (root / CONFIG_NAME).write_text(render_config(config.validate()))
    return Workspace.find(root)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One release folder (4 rows) and workspace for the tests that refuse, or only add to it."""
    tmp = tmp_path_factory.mktemp("release")
    ckpt, data, latent_dir = release_files(tmp, n=4)
    return tmp, data, latent_dir, small_workspace(tmp, ckpt)


@pytest.mark.slow
def test_import_then_next_round(tmp_path, monkeypatch):
    from dgan_al.workflows.next_round import next_round

    ckpt, data, latent_dir = release_files(tmp_path)
    ws = small_workspace(tmp_path, ckpt)
    report = import_datasetgan(ws, DatasetGANImport(folder=data, latents=latent_dir / "latent_stylegan1.npy",
                                                    avg_latent=latent_dir / "avg_latent_stylegan1.npy"))
    assert report.latent_kind == "z [5, 512] float64"
    assert all(c.matches and c.own_psnr > c.best_other_psnr for c in report.checks)
    assert len(report.imported) == 5 and report.cleaned_pixels == 5 * 9
    store = AnnotationStore(ws.annotations_dir)
    gen = ws.load_generator()
    z = np.load(latent_dir / "latent_stylegan1.npy").astype(np.float32)
    for i, id in enumerate(report.imported):
        record = store.records[id]
        assert np.allclose(record.z, z[i])  # the latent is recorded so features are regenerated
        expected = np.load(data / f"image_mask{i}.npy")
        expected[:3, :3] = 0
        assert np.array_equal(store.mask(id), expected)
        meta = json.loads(store.json_path(id).read_text())
        assert meta["flags"]["done"] and meta["shapes"]
        ours = np.asarray(Image.open(store.image_path(id)).convert("RGB")).astype(int)  # the generator's image
        assert np.abs(ours - gen.synthesize(torch.from_numpy(z[i:i + 1])).images[0].numpy()).max() <= 1
    result = next_round(Workspace.find(ws.root))  # the interpreter trains on them and the round exports
    assert result.status == "exported" and result.n_annotations == 5
    assert any(p.suffix == ".json" for p in result.folder.iterdir())


@pytest.mark.slow
def test_w_plus_rows_import_and_train(tmp_path):
    """The release's annotation_data_from_w form: rows are w+ [N, num_ws, 512] fed to the synthesis as
    they are (latent_to_image with use_style_latents=True: no mapping, no truncation)."""
    from dgan_al.workflows.next_round import next_round

    ckpt, data, latent_dir = release_files(tmp_path, n=4)
    gen = load_generator(str(ckpt), truncation_psi=0.7)
    z = torch.from_numpy(np.load(latent_dir / "latent_stylegan1.npy")).float()
    w_plus = gen.map_ws(z) + 0.3 * torch.randn(4, gen.config.num_ws, 512, generator=torch.Generator().manual_seed(5))
    np.save(latent_dir / "latent_w.npy", w_plus.numpy())
    rng = torch.Generator().manual_seed(9)  # the release draws fresh noise for each image
    gen.model.set_noise([torch.randn(m.shape, generator=rng) for b in gen.model.blocks for m in (b.epi0.noise, b.epi1.noise)])
    for i, image in enumerate(gen.synthesize_ws(w_plus).images.numpy()):
        Image.fromarray(image).save(data / f"image_{i}.jpg")
    ws = small_workspace(tmp_path, ckpt)
    report = import_datasetgan(ws, DatasetGANImport(folder=data, latents=latent_dir / "latent_w.npy"))
    assert report.latent_kind == f"w+ [4, {gen.config.num_ws}, 512] float32"
    assert len(report.imported) == 4 and all(c.matches for c in report.checks)
    store = AnnotationStore(ws.annotations_dir)
    mine = ws.load_generator()
    for i, id in enumerate(report.imported):
        assert np.allclose(store.records[id].z, w_plus[i].numpy())  # recorded as w+, used as given
        ours = np.asarray(Image.open(store.image_path(id)).convert("RGB")).astype(int)
        assert np.abs(ours - mine.synthesize(w_plus[i:i + 1]).images[0].numpy()).max() <= 1
    # the same rows read as z would be refused by shape, not mistaken for something else
    assert not np.allclose(mine.synthesize(z[:1]).images.numpy(), mine.synthesize(w_plus[:1]).images.numpy())
    result = next_round(Workspace.find(ws.root))  # features regenerated from the w+ rows; the pool stays z
    assert result.status == "exported" and result.n_annotations == 4
    exported = json.loads((result.folder / "selection.json").read_text())["items"]
    assert exported and all(len(item["z"]) == 512 for item in exported)


@pytest.mark.slow
def test_images_from_other_latents_are_refused_and_nothing_written(tmp_path, monkeypatch, shared):
    _, data, latent_dir, ws = shared
    other = tmp_path / "other_latents.npy"
    np.save(other, np.random.default_rng(7).standard_normal((4, 512)))
    before = snapshot(ws.root)
    monkeypatch.chdir(ws.root)
    result = runner.invoke(app, ["import-datasetgan", str(data), "--latents", str(other)])
    assert result.exit_code == 2, result.output
    assert "not made by this generator" in result.output and "nothing was written" in result.output
    w_plus = tmp_path / "w_plus.npy"
    np.save(w_plus, np.zeros((4, 12, 512), np.float32))
    result = runner.invoke(app, ["import-datasetgan", str(data), "--latents", str(w_plus)])
    assert result.exit_code == 2 and "w+ [4, 12, 512]" in result.output and "w+ [N, 10, 512]" in result.output
    assert "--latents:" in result.output  # the setting at fault, named by its flag
    wrong_avg = tmp_path / "avg.npy"
    np.save(wrong_avg, np.ones((18, 512), np.float32))
    result = runner.invoke(app, ["import-datasetgan", str(data), "--latents", str(latent_dir / "latent_stylegan1.npy"),
                                 "--avg-latent", str(wrong_avg)])
    assert result.exit_code == 2 and "average latent" in result.output
    assert snapshot(ws.root) == before


def test_missing_mask_row_is_refused(tmp_path, shared):
    import shutil

    _, source, latent_dir, ws = shared
    data = tmp_path / "training_data"
    shutil.copytree(source, data)
    (data / "image_mask1.npy").unlink()
    with pytest.raises(UserError, match="image_mask1.npy missing"):
        import_datasetgan(ws, DatasetGANImport(folder=data, latents=latent_dir / "latent_stylegan1.npy"))


def test_testing_data_becomes_a_labelme_test_set(tmp_path):
    from dgan_al.workflows.downstream import read_test_set

    source = tmp_path / "testing_data" / "car_20_class"
    source.mkdir(parents=True)
    rng = np.random.default_rng(0)
    masks = {}
    for k in range(3):
        image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(image).save(source / f"{k:03d}.png")
        mask = np.zeros((48, 64), np.uint8)
        mask[10:30, 5 + k:40] = 1
        mask[32:44, 20:50] = 2
        np.save(source / f"{k:03d}.npy", mask)
        masks[f"{k:03d}"] = mask
    out = tmp_path / "test_set"
    report = convert_test_set(source, out, CLASSES)
    assert report.written == ["000.json", "001.json", "002.json"]
    names, images, read_masks = read_test_set(out, CLASSES)
    for name, mask in zip(names, read_masks):
        assert (mask == masks[name]).mean() > 0.97  # polygons traced from the mask rasterise back to it
    with pytest.raises(UserError, match="already holds"):
        convert_test_set(source, out, CLASSES)


@pytest.mark.slow
def test_class_file_maps_mask_values_by_name(tmp_path, shared):
    """The release's class order (line i = mask value i) may differ from the workspace's."""
    _, data, latent_dir, ws = shared
    order = tmp_path / "release_classes.txt"
    order.write_text("background\nwheel\nbody\nmirror\n")  # values 1 and 2 swapped relative to the workspace
    report = import_datasetgan(ws, DatasetGANImport(folder=data, latents=latent_dir / "latent_stylegan1.npy",
                                                    classes=order))
    store = AnnotationStore(ws.annotations_dir)
    release = np.load(data / "image_mask0.npy")
    ours = store.mask(report.imported[0])
    assert np.array_equal(ours == 2, release == 1) and np.array_equal(ours == 1, release == 2)
    order.write_text("background\nwheel\nspoiler\n")
    with pytest.raises(UserError, match="spoiler"):
        import_datasetgan(ws, DatasetGANImport(folder=data, latents=latent_dir / "latent_stylegan1.npy", classes=order))

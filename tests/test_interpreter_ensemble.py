"""PixelEnsemble: it learns, it is seeded, it validates its inputs, it saves and refuses mismatched files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dgan_al.errors import UserError
from dgan_al.geometry import LabelGeometry
from dgan_al.device import resolve_device
from dgan_al.interpreter import IGNORE, PixelEnsemble
from dgan_al.interpreter.training import bootstrap_samples, build_pixel_pool



CHANNELS = [8, 6]
SIZES = [4, 16]
GEOMETRY = LabelGeometry(canvas=(16, 16), crop=(2, 0, 12, 16))
CLASSES = ["background", "skin", "hair", "eye"]


def synthetic_items(n: int, seed: int) -> list[tuple[list[torch.Tensor], np.ndarray]]:
    """Images whose class is a fixed linear function of the features: a pixel MLP can learn it."""
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(6, 4, generator=torch.Generator().manual_seed(123))  # the same rule for all seeds
    items = []
    for _ in range(n):
        maps = [torch.randn(c, s, s, generator=gen) for c, s in zip(CHANNELS, SIZES)]
        top, left, height, width = GEOMETRY.crop
        fine = F.interpolate(maps[1][None], size=GEOMETRY.canvas, mode="bilinear", align_corners=False)[0]
        fine = fine[:, top : top + height, left : left + width]
        mask = torch.einsum("chw,ck->khw", fine, direction).argmax(0).numpy().astype(np.uint8)
        mask[0, :3] = IGNORE  # a few unlabelled pixels
        items.append(([m.half() for m in maps], mask))
    return items


def small_ensemble(**kwargs) -> PixelEnsemble:
    params = dict(n_members=3, hidden=(16, 8), generator="toy@1", pixels_per_image=150, batch_size=64,
                  max_epochs=6, tol=0.0)
    params.update(kwargs)
    return PixelEnsemble(CHANNELS, CLASSES, **params)


@pytest.fixture(scope="module")
def trained() -> PixelEnsemble:
    return small_ensemble().fit(synthetic_items(6, seed=0), GEOMETRY)


def test_fit_learns_a_rule_of_the_features(trained):
    history = trained.history_
    assert history[-1].loss < history[0].loss
    assert history[-1].accuracy > history[0].accuracy
    held_out = synthetic_items(3, seed=99)
    maps = [torch.stack([item[0][layer] for item in held_out]).float() for layer in range(2)]
    prediction = trained.predict(maps)
    masks = np.stack([item[1] for item in held_out])
    labelled = masks != IGNORE
    accuracy = (prediction.labels.numpy()[labelled] == masks[labelled]).mean()
    assert accuracy > 0.8  # chance is about 0.25
    assert prediction.js.shape == (3, 12, 16) and (prediction.js >= 0).all()
    assert trained.pool_bytes_ == sum(min(150, 12 * 16 - 3) for _ in range(6)) * sum(CHANNELS) * 2


def test_fit_is_seeded_and_streams_its_items():
    items = synthetic_items(2, seed=1)
    a = small_ensemble(max_epochs=1).fit(items, GEOMETRY)
    b = small_ensemble(max_epochs=1).fit(iter(items), GEOMETRY)  # a one-pass iterator is fine
    c = small_ensemble(max_epochs=1, seed=1).fit(items, GEOMETRY)
    for key, value in a.net_.state_dict().items():
        assert torch.equal(value, b.net_.state_dict()[key])
    assert not torch.equal(a.net_.w1, c.net_.w1)


def test_each_member_trains_on_its_own_sample_with_every_region():
    pool = build_pixel_pool(synthetic_items(2, seed=2), GEOMETRY, 60, 1.0, seed=0)
    samples = bootstrap_samples(pool, n_members=4, batch_size=64, seed=0)
    assert samples.shape[1] % 64 == 0 and samples.shape[1] >= len(pool.labels)
    representatives = set(torch.nonzero(pool.representative).flatten().tolist())
    assert representatives
    for member in samples:
        assert representatives <= set(member.tolist())
    assert not torch.equal(samples[0], samples[1])


def test_progress_is_reported():
    calls = []
    small_ensemble(max_epochs=1).fit(synthetic_items(2, seed=3), GEOMETRY, progress=lambda *a: calls.append(a))
    tasks = {task for task, _, _ in calls}
    assert tasks == {"sampling annotated pixels", "training interpreter"}
    done, total = calls[-1][1], calls[-1][2]
    assert done == total


def test_save_load_round_trip(trained, tmp_path):
    path = tmp_path / "interpreter.pt"
    trained.save(path)
    loaded = PixelEnsemble.load(path, expect_generator="toy@1", expect_classes=CLASSES)
    assert loaded.classes == CLASSES and loaded.feature_channels == CHANNELS and loaded.generator == "toy@1"
    assert loaded.geometry_ == GEOMETRY and loaded.hidden_ == (16, 8) and loaded.n_members == 3
    assert [r.loss for r in loaded.history_] == [r.loss for r in trained.history_]
    maps = [torch.randn(2, c, s, s) for c, s in zip(CHANNELS, SIZES)]
    a, b = trained.predict(maps), loaded.predict(maps)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.js, b.js) and torch.equal(a.embedding, b.embedding)


def test_load_refuses_another_generator_or_class_list(trained, tmp_path):
    path = tmp_path / "interpreter.pt"
    trained.save(path)
    with pytest.raises(UserError, match=r"interpreter\.pt.*generator 'toy@1', not 'cars@2'"):
        PixelEnsemble.load(path, expect_generator="cars@2")
    with pytest.raises(UserError, match=r"missing \['nose'\]; unexpected \['eye'\]"):
        PixelEnsemble.load(path, expect_classes=["background", "skin", "hair", "nose"])
    with pytest.raises(UserError, match="another order"):
        PixelEnsemble.load(path, expect_classes=["skin", "background", "hair", "eye"])


def test_load_refuses_files_that_are_not_interpreters(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(UserError, match="nope.pt: interpreter weights not found"):
        PixelEnsemble.load(missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(UserError, match="garbage.pt: not a dgan-al interpreter file"):
        PixelEnsemble.load(garbage)
    broken = tmp_path / "broken.pt"
    good = tmp_path / "good.pt"
    torch.save({"format": "x"}, good)
    broken.write_bytes(good.read_bytes()[:-40])  # a truncated archive
    with pytest.raises(UserError, match="broken.pt: not a"):
        PixelEnsemble.load(broken)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, other)
    with pytest.raises(UserError, match="other.pt: not a dgan-al interpreter file"):
        PixelEnsemble.load(other)


def test_fit_input_errors_say_what_was_expected():
    items = synthetic_items(1, seed=4)
    maps, mask = items[0]
    ensemble = small_ensemble()
    with pytest.raises(ValueError, match=r"item 0: expected 2 feature maps, got 1"):
        ensemble.fit([(maps[:1], mask)], GEOMETRY)
    expected = r"item 0, layer 1: expected a \[6, h, w\] map of one image, got shape \[1, 6, 16, 16\]"
    with pytest.raises(ValueError, match=expected):
        ensemble.fit([([maps[0], maps[1][None]], mask)], GEOMETRY)
    with pytest.raises(ValueError, match=r"expected a mask of shape \(12, 16\), got \(16, 16\)"):
        ensemble.fit([(maps, np.zeros((16, 16), np.uint8))], GEOMETRY)
    bad = mask.copy()
    bad[5, 5] = 7
    with pytest.raises(ValueError, match=r"class ids \[7\]; expected 0..3 or 255"):
        ensemble.fit([(maps, bad)], GEOMETRY)
    with pytest.raises(ValueError, match="no pixel at all"):
        ensemble.fit([(maps, np.full((12, 16), IGNORE, np.uint8))], GEOMETRY)
    with pytest.raises(RuntimeError, match="not trained yet"):
        ensemble.predict([m[None] for m in maps])


def test_constructor_checks_and_defaults():
    assert PixelEnsemble([4], ["a", "b"]).check_params().hidden_ == (128, 32)
    assert PixelEnsemble([4], [f"c{i}" for i in range(32)]).check_params().hidden_ == (256, 128)
    stored = PixelEnsemble([4], ["a", "a"], class_balance=2, device="nonsense")  # the constructor only stores
    assert stored.get_params()["class_balance"] == 2 and stored.get_params()["device"] == "nonsense"
    with pytest.raises(ValueError, match="distinct"):
        stored.check_params()
    with pytest.raises(ValueError, match="class_balance"):
        PixelEnsemble([4], ["a", "b"], class_balance=2).fit(synthetic_items(1, seed=0), GEOMETRY)
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_feature_cache_round_trip_feeds_fit(tmp_path):
    from dgan_al.interpreter.feature_cache import feature_cache_bytes, load_feature_maps, save_feature_maps

    items = synthetic_items(2, seed=5)
    for i, (maps, _) in enumerate(items):
        save_feature_maps(tmp_path / f"{i}.pt", [m.float()[None] for m in maps])  # [1, C, h, w] is fine
    loaded = [load_feature_maps(tmp_path / f"{i}.pt") for i in range(2)]
    for (maps, _), back in zip(items, loaded):
        assert all(torch.equal(a, b) and b.dtype == torch.float16 for a, b in zip(maps, back))
    assert feature_cache_bytes(CHANNELS, [(s, s) for s in SIZES]) == sum(2 * c * s * s for c, s in zip(CHANNELS, SIZES))
    streamed = ((load_feature_maps(tmp_path / f"{i}.pt"), items[i][1]) for i in range(2))
    small_ensemble(max_epochs=1).fit(streamed, GEOMETRY)
    with pytest.raises(UserError, match="cached features not found"):
        load_feature_maps(tmp_path / "missing.pt")


def test_stopping_rule_stops_when_the_loss_stops_improving_by_tol():
    items = synthetic_items(1, seed=6)
    # epoch 2 cannot lower the loss by 99%: training stops there; with tol=-inf it runs all max_epochs
    assert len(small_ensemble(max_epochs=5, tol=0.99).fit(items, GEOMETRY).history_) == 2
    assert len(small_ensemble(max_epochs=3, tol=-float("inf")).fit(items, GEOMETRY).history_) == 3

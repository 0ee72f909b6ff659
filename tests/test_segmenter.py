"""The downstream segmenter: network shapes, the trainer's loss / confusions / determinism, and that it learns."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings as hyp_settings, strategies as st

from dgan_al.errors import UserError
from dgan_al.metrics import confusion_matrix, mean_iou
from dgan_al.segmenter import SegmenterSettings, build_segmenter, predict_segmenter, train_segmenter
from dgan_al.segmenter.train import _batches

TINY = {"width": 8, "depth": 2}  # a small compact U-Net: fast on the CPU, still learns the shapes below


def shapes_dataset(n: int, size: tuple[int, int] = (32, 32), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n noisy images with a red rectangle (class 1) and a blue disc (class 2) over a grey background
    (class 0); the masks are exact. uint8 [n, H, W, 3], uint8 [n, H, W]."""
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[:height, :width]
    images = np.empty((n, height, width, 3), np.uint8)
    masks = np.zeros((n, height, width), np.uint8)
    for i in range(n):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        rect_height, rect_width = rng.integers(2, max(3, height // 2)), rng.integers(2, max(3, width // 2))
        rect = (yy >= top) & (yy < top + rect_height) & (xx >= left) & (xx < left + rect_width)
        cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(3, max(4, min(size) // 4))
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        masks[i][rect] = 1
        masks[i][disc] = 2  # the disc is drawn over the rectangle
        colour = np.array([[120, 120, 120], [200, 40, 40], [40, 60, 200]], np.float64)[masks[i]]
        noisy = colour + rng.normal(0, 20, size=colour.shape)
        images[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return images, masks


def run_settings(**overrides) -> SegmenterSettings:
    values = dict(epochs=2, batch=4, seed=0, model_options=dict(TINY))
    values.update(overrides)
    return SegmenterSettings(**values)


# --- the network -----------------------------------------------------------------------------------------


@hyp_settings(max_examples=12, deadline=None)
@given(height=st.integers(1, 41), width=st.integers(1, 41), depth=st.integers(1, 3))
def test_compact_logits_have_the_input_size(height, width, depth):
    torch.manual_seed(0)
    model = build_segmenter("compact", 5, width=4, depth=depth).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, height, width))
    assert logits.shape == (2, 5, height, width)
    assert torch.isfinite(logits).all()


def test_compact_trains_on_odd_sizes():
    torch.manual_seed(0)
    model = build_segmenter("compact", 3, **TINY).train()
    logits = model(torch.rand(2, 3, 27, 35))  # 27 x 35: padded to 28 x 36 inside (stride 8), cropped back
    assert logits.shape == (2, 3, 27, 35)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_build_args_rebuild_the_same_architecture():
    torch.manual_seed(0)
    model = build_segmenter("compact", 4, width=8, depth=1)
    twin = build_segmenter(**model.build_args)
    twin.load_state_dict(model.state_dict())  # strict: same parameter names and shapes
    x = torch.rand(2, 3, 12, 10)
    assert torch.equal(model.eval()(x), twin.eval()(x))


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="unknown segmentation model 'unet9'"):
        build_segmenter("unet9", 3)


def test_deeplabv3_returns_logits_at_the_input_size():
    pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = build_segmenter("deeplabv3", 4).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 33, 47))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 4, 33, 47)


def test_deeplabv3_without_torchvision_says_how_to_install_it(monkeypatch):
    # Make every torchvision import fail, as on a machine where it is not installed (None in sys.modules
    # makes `import` raise ImportError, also for submodules imported before).
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")] + ["torchvision"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(UserError, match="pip install torchvision"):
        build_segmenter("deeplabv3", 4)


# --- the trainer -----------------------------------------------------------------------------------------


def test_trainer_overfits_a_tiny_set():
    images, masks = shapes_dataset(8)
    settings = run_settings(epochs=40, batch=2, model_options={"width": 16, "depth": 2})  # Adam at the paper's 1e-3
    run = train_segmenter(images, masks, 3, settings, list(images), list(masks))
    first, last = mean_iou(run.confusions[0].sum(0)), mean_iou(run.confusions[-1].sum(0))
    assert run.losses[-1] < 0.3 * run.losses[0], run.losses
    assert last > 0.85 and last > first + 0.3, (first, last)
    assert not run.model.training


def test_same_seed_same_run_other_seed_other_run():
    images, masks = shapes_dataset(6)
    a = train_segmenter(images, masks, 3, run_settings(), list(images[:2]), list(masks[:2]))
    b = train_segmenter(images, masks, 3, run_settings(), list(images[:2]), list(masks[:2]))
    c = train_segmenter(images, masks, 3, run_settings(seed=1), list(images[:2]), list(masks[:2]))
    assert a.losses == b.losses
    np.testing.assert_array_equal(a.confusions, b.confusions)
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert a.losses != c.losses


def test_trainer_leaves_the_global_rng_and_thread_count_alone():
    images, masks = shapes_dataset(2)
    before, threads = torch.get_rng_state(), torch.get_num_threads()
    seen = []
    train_segmenter(images, masks, 3, run_settings(epochs=1, threads=threads + 1),
                    progress=lambda *_: seen.append(torch.get_num_threads()))
    assert set(seen) == {threads + 1}
    assert torch.equal(before, torch.get_rng_state()) and torch.get_num_threads() == threads


def test_loss_counts_only_labelled_pixels():
    """With lr = 0 and one batch, epoch 1's loss is the initial model's cross-entropy on the labelled pixels."""
    images, masks = shapes_dataset(4, size=(24, 24))
    rng = np.random.default_rng(3)
    masks = masks.copy()
    masks[rng.random(masks.shape) < 0.7] = 255  # most pixels ignored
    run = train_segmenter(images, masks, 3, run_settings(epochs=1, batch=4, lr=0.0))

    torch.manual_seed(0)  # the same initial weights as the run (seed 0)
    model = build_segmenter("compact", 3, **TINY).train()  # one batch of all 4: same BatchNorm statistics
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        log_p = F.log_softmax(model(x), dim=1).permute(0, 2, 3, 1).numpy()  # [N, H, W, K]
    labelled = masks != 255
    expected = -log_p[labelled, masks[labelled]].mean()
    # the same loss if the ignored pixels counted as background: must differ, or this test could not fail
    everything = -np.concatenate([log_p[labelled, masks[labelled]], log_p[~labelled, 0]]).mean()
    assert run.losses[0] == pytest.approx(expected, rel=1e-4)
    assert abs(everything - expected) > 1e-3  # the check can tell the two apart


def test_a_batch_without_labels_is_skipped():
    images, _ = shapes_dataset(4)
    masks = np.full(images.shape[:3], 255, np.uint8)
    torch.manual_seed(0)
    initial = build_segmenter("compact", 3, **TINY).state_dict()
    run = train_segmenter(images, masks, 3, run_settings(epochs=1))
    assert np.isnan(run.losses[0])
    for name, value in run.model.state_dict().items():  # no step, and no forward pass moved BatchNorm
        assert torch.equal(value, initial[name]), name


def test_confusions_per_epoch_and_test_image():
    images, masks = shapes_dataset(4)
    test_images, test_masks = [], []
    for size, seed in [((17, 23), 1), ((32, 32), 2), ((9, 40), 3)]:  # sizes unlike the training images
        image, mask = shapes_dataset(1, size=size, seed=seed)
        mask = mask[0].copy()
        mask[:2] = 255  # two ignored rows
        test_images.append(image[0])
        test_masks.append(mask)
    calls = []
    run = train_segmenter(images, masks, 3, run_settings(epochs=3), test_images, test_masks,
                          progress=lambda task, done, total: calls.append((task, done, total)))
    assert run.confusions.shape == (3, 3, 3, 3) and run.confusions.dtype == np.int64
    labelled = np.array([(m != 255).sum() for m in test_masks])
    np.testing.assert_array_equal(run.confusions.sum((2, 3)), np.broadcast_to(labelled, (3, 3)))
    # the last epoch's matrices are those of the returned model
    last = [confusion_matrix(p, t, 3) for p, t in zip(predict_segmenter(run.model, test_images), test_masks)]
    np.testing.assert_array_equal(run.confusions[-1], np.stack(last))
    assert calls[-1] == ("testing", 9, 9)
    assert ("training segmenter", 3, 3) in calls  # 4 images, batch 4: one step per epoch
    assert [c for c in calls if c[0] == "training segmenter"][1:] == [("training segmenter", s, 3) for s in (1, 2, 3)]


def test_predict_matches_one_image_at_a_time():
    torch.manual_seed(0)
    model = build_segmenter("compact", 4, **TINY)
    rng = np.random.default_rng(0)
    sizes = [(16, 16), (9, 13), (16, 16), (16, 16), (9, 13)]  # grouped by size, two per pass
    images = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]
    batched = predict_segmenter(model, images, batch=2)
    assert model.training  # left in the mode it had
    model.eval()
    with torch.no_grad():
        for image, labels in zip(images, batched):
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
            assert labels.dtype == np.uint8 and labels.shape == image.shape[:2]
            np.testing.assert_array_equal(labels, model(x).argmax(1)[0].numpy())


@hyp_settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 30), batch=st.integers(1, 9))
def test_batches_cover_every_pair_once_and_never_leave_one_alone(n, batch):
    order = np.random.default_rng(n).permutation(n)
    parts = _batches(order, batch)
    np.testing.assert_array_equal(np.concatenate(parts), order)
    assert all(len(p) >= 2 for p in parts) or n == 1 or batch == 1
    assert all(len(p) <= batch + 1 for p in parts)


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, message", [
    (lambda im, m: (im.astype(np.float32), m), "images must be a uint8 array"),
    (lambda im, m: (im[..., :2], m[..., :2]), "images must be a uint8 array"),
    (lambda im, m: (im, m[:, :-1]), "masks must be a uint8 array"),
    (lambda im, m: (im, m.astype(np.int64)), "masks must be a uint8 array"),
    (lambda im, m: (im, np.where(m == 2, 7, m).astype(np.uint8)), r"class ids \[7\]"),
    (lambda im, m: (im[:0], m[:0]), "no training pairs"),
])
def test_bad_training_pairs_are_refused(change, message):
    images, masks = shapes_dataset(2)
    images, masks = change(images, masks)
    with pytest.raises(ValueError, match=message):
        train_segmenter(images, masks, 3, run_settings(epochs=1))


def test_bad_test_set_is_refused():
    images, masks = shapes_dataset(2)
    with pytest.raises(ValueError, match="2 test images but 1 test masks"):
        train_segmenter(images, masks, 3, run_settings(), list(images), list(masks[:1]))
    with pytest.raises(ValueError, match="test mask 1 must be a uint8 array"):
        train_segmenter(images, masks, 3, run_settings(), list(images), [masks[0], masks[1][:5]])
    with pytest.raises(ValueError, match=r"test mask 0 hold class ids \[3\]"):
        train_segmenter(images, masks, 3, run_settings(), [images[0]], [np.full((32, 32), 3, np.uint8)])

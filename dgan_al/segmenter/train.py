"""Train a downstream segmenter on (image, mask) pairs and test it on real images after every epoch.

The paper's downstream protocol (PAPER.md, "Evaluation"): a segmentation network is trained on the
generated dataset with Adam (lr 1e-3, batch 8) and every epoch is a candidate checkpoint; the real test
images are split in folds, each fold picks the checkpoint, the others are scored. So that this choice is
pure arithmetic afterwards (``dgan_al.metrics.select_and_score``) and no checkpoint needs storing, the
trainer predicts every test image after every epoch and keeps one confusion matrix per (epoch, image).

Conventions: images are uint8 RGB ``[H, W, 3]``; masks uint8 ``[H, W]`` class ids, 255 = ignore (not
in the loss, not in any confusion matrix). The model sees ``image / 255`` in training and testing alike
(the ``Segmenter`` normalises internally). Test images may have any size each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dgan_al.device import resolve_device
from dgan_al.metrics import IGNORE, confusion_matrix
from dgan_al.progress import ProgressCallback, silent
from dgan_al.segmenter.network import build_segmenter


@dataclass
class SegmenterSettings:
    """How to train the downstream segmenter.

    model:          "compact" (the U-Net of ``network.py``, CPU-friendly) or "deeplabv3" (torchvision).
    epochs:         passes over the training pairs; each one is a checkpoint candidate. The paper's 20:
                    with the compact model, 1000 pairs of 128 px plus 100 test images take ~32 s/epoch on
                    1 thread of this project's CPU (11 minutes in all), ~16 s/epoch on 2 idle cores
                    (benchmarks/segmenter_speed.py).
    batch:          pairs per Adam step (the paper's 8).
    lr:             Adam learning rate, constant (the paper's 1e-3).
    seed:           draws the initial weights and the order of the pairs; same seed, same run on the CPU.
    device:         "cpu", "cuda", "cuda:1", ... or "auto" (CUDA when available).
    test_batch:     test images predicted per forward pass (only images of one size share a pass).
    threads:        torch CPU threads during the run (restored afterwards); None leaves torch's setting.
                    Use no more threads than idle cores: with 2 threads and one core busy elsewhere an
                    epoch took 140-350 s instead of 32 s on 1 thread (every op waits for the second one).
    model_options:  extra arguments of ``build_segmenter`` (e.g. ``{"width": 24}`` for the compact one).
    """

    model: str = "compact"
    epochs: int = 20
    batch: int = 8
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    test_batch: int = 16
    threads: int | None = None
    model_options: dict = field(default_factory=dict)


@dataclass
class SegmenterRun:
    """What ``train_segmenter`` returns.

    model:       the network after the LAST epoch, in eval mode.
    losses:      mean training cross-entropy per epoch (over the non-ignored pixels of the epoch), [E].
    confusions:  int64 [E, N_test, K, K]: after epoch e, test image n's confusion matrix (rows = truth).
    seconds:     wall time of the whole run (training and testing).
    """

    model: nn.Module
    losses: list[float]
    confusions: np.ndarray
    seconds: float


def same_size_batches(images: Sequence[np.ndarray], batch: int) -> Iterator[list[int]]:
    """Indices of ``images`` in batches of at most ``batch``, each of one image size (test images may differ)."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        by_size.setdefault(tuple(image.shape[:2]), []).append(i)
    for indices in by_size.values():
        for start in range(0, len(indices), batch):
            yield indices[start:start + batch]


def check_pairs(images: np.ndarray, masks: np.ndarray, n_classes: int) -> None:
    """ValueError unless images is uint8 [N, H, W, 3] and masks uint8 [N, H, W] with ids < K or 255."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be a uint8 array [N, H, W, 3], got {_describe(images)}")
    if not isinstance(masks, np.ndarray) or masks.dtype != np.uint8 or masks.shape != images.shape[:3]:
        raise ValueError(f"masks must be a uint8 array {list(images.shape[:3])} (one per image), "
                         f"got {_describe(masks)}")
    if len(images) == 0:
        raise ValueError("there are no training pairs")
    _check_class_ids(masks, n_classes, "training masks")


def check_test_set(test_images: Sequence[np.ndarray], test_masks: Sequence[np.ndarray], n_classes: int) -> None:
    """ValueError unless each test image is uint8 [h, w, 3] with a uint8 [h, w] mask (ids < K or 255)."""
    if len(test_images) != len(test_masks):
        raise ValueError(f"{len(test_images)} test images but {len(test_masks)} test masks")
    for i, (image, mask) in enumerate(zip(test_images, test_masks)):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"test image {i} must be a uint8 array [h, w, 3], got {_describe(image)}")
        if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.shape != image.shape[:2]:
            raise ValueError(f"test mask {i} must be a uint8 array {list(image.shape[:2])}, got {_describe(mask)}")
        _check_class_ids(mask, n_classes, f"test mask {i}")


def _check_class_ids(masks: np.ndarray, n_classes: int, what: str) -> None:
    ids = np.flatnonzero(np.bincount(masks.ravel(), minlength=256))  # the ids present (uint8: 0..255)
    bad = ids[(ids >= n_classes) & (ids != IGNORE)]
    if bad.size:
        raise ValueError(f"{what} hold class ids {bad.tolist()}, but there are {n_classes} classes "
                         f"(ids 0..{n_classes - 1}, {IGNORE} = ignore)")


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array {list(x.shape)}"
    return type(x).__name__


def _to_input(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1]."""
    return images_u8.permute(0, 3, 1, 2).float().div_(255)


def _batches(order: np.ndarray, batch: int) -> list[np.ndarray]:
    """Cut a permutation into mini-batches; a last batch of one joins the one before (BatchNorm needs two)."""
    parts = [order[i:i + batch] for i in range(0, len(order), batch)]
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts[-2:] = [np.concatenate(parts[-2:])]
    return parts


@torch.no_grad()
def predict_segmenter(model: nn.Module, images: Sequence[np.ndarray], device: str | torch.device = "cpu",
                      batch: int = 16) -> list[np.ndarray]:
    """Class id maps uint8 [h, w] (argmax of the logits), one per uint8 [h, w, 3] image, in order.

    Images of one size are predicted together, ``batch`` at a time; the model is put in eval mode and left
    in the mode it had before.
    """
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    out: list[np.ndarray | None] = [None] * len(images)
    for chunk in same_size_batches(images, batch):
        x = _to_input(torch.from_numpy(np.stack([images[i] for i in chunk])).to(device))
        labels = model(x).argmax(1).to(torch.uint8).cpu().numpy()  # [b, h, w]
        for i, label in zip(chunk, labels):
            out[i] = label
    model.train(was_training)
    return out  # type: ignore[return-value]


def train_segmenter(images: np.ndarray, masks: np.ndarray, n_classes: int, settings: SegmenterSettings,
                    test_images: Sequence[np.ndarray] = (), test_masks: Sequence[np.ndarray] = (),
                    progress: ProgressCallback = silent) -> SegmenterRun:
    """Train ``settings.model`` on the pairs; after every epoch, score each test image.

    images uint8 [N, H, W, 3], masks uint8 [N, H, W] (255 = ignore); test images / masks: sequences of
    uint8 [h, w, 3] / [h, w], sizes free. Cross-entropy over the non-ignored pixels, Adam, shuffled
    mini-batches, no augmentation. Progress: ("training segmenter", step, total steps) and ("testing",
    images done, epochs x test images). The global torch RNG is left as it was.
    """
    check_pairs(images, masks, n_classes)
    check_test_set(test_images, test_masks, n_classes)
    if settings.epochs < 1 or settings.batch < 1:
        raise ValueError(f"epochs and batch must be at least 1, got {settings.epochs} and {settings.batch}")
    threads_before = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        return _train(images, masks, n_classes, settings, test_images, test_masks, progress)
    finally:
        torch.set_num_threads(threads_before)


def _train(images, masks, n_classes, settings, test_images, test_masks, progress) -> SegmenterRun:
    device = resolve_device(settings.device)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # the weights are drawn on the CPU, then moved
        torch.manual_seed(settings.seed)
        model = build_segmenter(settings.model, n_classes, **settings.model_options)
    model = model.to(device)  # (channels-last tensors: no faster with 1 thread, erratic with 2 on a busy CPU)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)

    order_rng = np.random.default_rng(settings.seed)
    steps_per_epoch = len(_batches(np.arange(len(images)), settings.batch))
    total_steps, total_tests = settings.epochs * steps_per_epoch, settings.epochs * len(test_images)
    losses: list[float] = []
    confusions = np.zeros((settings.epochs, len(test_images), n_classes, n_classes), dtype=np.int64)
    step = 0
    progress("training segmenter", 0, total_steps)
    if total_tests:
        progress("testing", 0, total_tests)
    for epoch in range(settings.epochs):
        model.train()
        loss_sum, pixel_count = 0.0, 0
        for batch in _batches(order_rng.permutation(len(images)), settings.batch):
            # numpy's fancy indexing copies the batch, so read-only (e.g. memory-mapped) arrays are fine
            x = _to_input(torch.from_numpy(images[batch]).to(device))  # [b, 3, H, W]
            target = torch.from_numpy(masks[batch]).to(device).long()  # [b, H, W]
            counted = int((target != IGNORE).sum())
            if counted:  # a batch with nothing labelled has no loss: skip it rather than step on NaN
                loss_total = F.cross_entropy(model(x), target, ignore_index=IGNORE, reduction="sum")
                optimizer.zero_grad(set_to_none=True)
                (loss_total / counted).backward()
                optimizer.step()
                loss_sum += float(loss_total.detach())
                pixel_count += counted
            step += 1
            progress("training segmenter", step, total_steps)
        losses.append(loss_sum / pixel_count if pixel_count else float("nan"))

        if len(test_images):
            predictions = predict_segmenter(model, test_images, device, batch=settings.test_batch)
            for n, (prediction, truth) in enumerate(zip(predictions, test_masks)):
                confusions[epoch, n] = confusion_matrix(prediction, truth, n_classes)
            progress("testing", (epoch + 1) * len(test_images), total_tests)
    model.eval()
    return SegmenterRun(model=model, losses=losses, confusions=confusions, seconds=time.perf_counter() - start)

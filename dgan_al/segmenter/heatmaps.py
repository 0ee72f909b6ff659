"""A downstream keypoint network: the compact U-Net with one heatmap channel per keypoint (paper §5.2).

    train_heatmap_network(images, keypoints, names, settings, test_images) -> HeatmapRun

- Network: ``build_segmenter(settings.model, K)``; its K output channels are heatmaps, *linear* (no
  sigmoid). L2 regression on a sigmoid saturates (the gradient carries sigma'(z), small exactly where the
  prediction is confidently wrong) and a zero background drives its logits to -inf; a linear output with L2
  is the usual heatmap regression (Tompson 2014, Newell 2016, Xiao 2018) and what the interpreter's heads
  do, so the peak value reads on the same scale as their confidence (``[keypoints] prefill_confidence``).
- Targets: exp(-d^2 / 2 sigma^2) around a point with v 1 or 2 (occluded trains as present), a zero map for
  v = 0; a NaN row (name not annotated) has no loss. Loss: mean squared error over the annotated channels.
- Adam, constant lr, shuffled mini-batches (the segmenter's settings: lr 1e-3, batch 8). A horizontal flip
  of each training image with probability 1/2 mirrors x (x' = W - 1 - x, pixel centres at integers) and
  swaps the left/right pairs (``flip_pairs``): a flipped left eye is the right eye.
- A checkpoint is ``steps_per_epoch`` optimizer steps (default one pass over the images); batches are cut
  from successive permutations, so a few images can get the same number of steps as many. After every
  checkpoint each test image is predicted: per keypoint the sub-pixel peak (``heatmap_peaks``: argmax, then a
  parabola through the logs of its neighbours) and the peak value as confidence, clamped to [0, 1]. These
  [E, N, K] arrays are all the 5-fold selection needs; no checkpoint is stored.

Conventions: images uint8 [N, H, W, 3] (one size in training, any size each in testing); keypoints float
[N, K, 3] (x, y, v) in image pixels, COCO visibility, NaN rows where not annotated. Same seed, same run on
the CPU; the global torch RNG is left as it was.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from dgan_al.device import resolve_device
from dgan_al.peaks import heatmap_peaks
from dgan_al.progress import ProgressCallback, silent
from dgan_al.segmenter.network import build_segmenter
from dgan_al.segmenter.train import SegmenterSettings, _batches, _to_input, same_size_batches

DEFAULT_SIGMA = 2.0  # label pixels, as ``[keypoints] sigma``

_SIDES = {"left": "right", "right": "left", "Left": "Right", "Right": "Left", "LEFT": "RIGHT", "RIGHT": "LEFT",
          "l": "r", "r": "l", "L": "R", "R": "L"}


def mirror_name(name: str) -> str:
    """The name with its side swapped: a ``left`` / ``right`` word anywhere between ``_``, ``-`` or ``.``
    (``left_eye``, ``mouth_left``), or ``l`` / ``r`` as the first or last word (``l_ankle``); else itself."""
    words = re.split(r"([_.\-])", name)  # words at even positions, separators kept at odd ones
    last = len(words) - 1
    out = [(_SIDES.get(w, w) if len(w) > 1 or k in (0, last) else w) if k % 2 == 0 else w for k, w in enumerate(words)]
    return "".join(out)


def flip_pairs(names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The (left, right) pairs a horizontal flip swaps, in the order of their first name in ``names``.

    A name pairs with its ``mirror_name`` when that is in ``names`` too; others stay put."""
    names = list(names)
    pairs, seen = [], set()
    for name in names:
        other = mirror_name(name)
        if other != name and other in names and name not in seen:
            pairs.append((name, other))
            seen.update((name, other))
    return tuple(pairs)


def flip_permutation(names: Sequence[str]) -> np.ndarray:
    """int [K]: row k of flipped keypoints comes from row ``perm[k]`` (the pairs swapped)."""
    index = {name: k for k, name in enumerate(names)}
    perm = np.arange(len(names))
    for a, b in flip_pairs(names):
        perm[index[a]], perm[index[b]] = index[b], index[a]
    return perm


def flip_keypoints(keypoints: np.ndarray, width: int, perm: np.ndarray) -> np.ndarray:
    """Keypoints [..., K, 3] of an image flipped left-right: x' = width - 1 - x for placed points (v >= 1),
    rows swapped by ``perm``; v = 0 rows keep x = y = 0, NaN rows stay NaN."""
    out = np.array(keypoints, dtype=np.float32, copy=True)
    placed = out[..., 2] > 0
    out[..., 0] = np.where(placed, width - 1 - out[..., 0], out[..., 0])
    return out[..., perm, :]


@dataclass
class HeatmapSettings(SegmenterSettings):
    """How to train the downstream keypoint network: the segmenter's settings (``SegmenterSettings``: model,
    epochs = checkpoints, each a candidate for the fold selection, batch, lr, seed, device, test_batch,
    threads, model_options), plus the heatmaps'.

    steps_per_epoch:  optimizer steps per checkpoint; None: one pass over the training images.
    sigma:            Gaussian target's standard deviation, image pixels; None: ``DEFAULT_SIGMA``.
    flip:             random horizontal flips with the left/right pairs swapped.
    """

    steps_per_epoch: int | None = None
    sigma: float | None = None
    flip: bool = True


@dataclass
class HeatmapRun:
    """What ``train_heatmap_network`` returns.

    model:       the network after the last checkpoint, eval mode.
    losses:      mean training loss (squared error per annotated heatmap pixel) per checkpoint, [E].
    positions:   float32 [E, N_test, K, 2] (x, y) peak of each test image after each checkpoint.
    confidence:  float32 [E, N_test, K] the peak's value, clamped to [0, 1].
    steps:       optimizer steps per checkpoint.
    """

    model: nn.Module
    losses: list[float]
    positions: np.ndarray
    confidence: np.ndarray
    steps: int
    seconds: float


def gaussian_heatmaps(keypoints: torch.Tensor, height: int, width: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets float [B, K, H, W] and weights float [B, K] of keypoints float [B, K, 3] (NaN: weight 0)."""
    x, y, v = keypoints.unbind(-1)
    known = ~torch.isnan(v)
    placed = known & (v > 0)
    xs = torch.arange(width, dtype=torch.float32, device=keypoints.device)
    ys = torch.arange(height, dtype=torch.float32, device=keypoints.device)
    gx = torch.exp(-((xs - torch.where(placed, x, 0.0)[..., None]) ** 2) / (2 * sigma * sigma))  # [B, K, W]
    gy = torch.exp(-((ys - torch.where(placed, y, 0.0)[..., None]) ** 2) / (2 * sigma * sigma))  # [B, K, H]
    target = gy[..., :, None] * gx[..., None, :] * placed[..., None, None]
    return target, known.to(torch.float32)


@torch.no_grad()
def predict_keypoints(model: nn.Module, images: Sequence[np.ndarray], device: str | torch.device = "cpu",
                      batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(positions float32 [N, K, 2], confidence float32 [N, K]) of uint8 [h, w, 3] images of any sizes."""
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    n, k = len(images), model.n_classes
    positions, confidence = np.zeros((n, k, 2), np.float32), np.zeros((n, k), np.float32)
    for chunk in same_size_batches(images, batch):
        heat = model(_to_input(torch.from_numpy(np.stack([images[i] for i in chunk])).to(device)))
        where, value = heatmap_peaks(heat)  # [b, K, 2], [b, K]
        positions[chunk] = where.cpu().numpy()
        confidence[chunk] = value.clamp(0.0, 1.0).cpu().numpy()
    model.train(was_training)
    return positions, confidence


def _batch_stream(n: int, batch: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    while True:  # successive permutations, each cut as the segmenter cuts an epoch
        yield from _batches(rng.permutation(n), batch)


def train_heatmap_network(images: np.ndarray, keypoints: np.ndarray, names: Sequence[str],
                          settings: HeatmapSettings, test_images: Sequence[np.ndarray] = (),
                          progress: ProgressCallback = silent) -> HeatmapRun:
    """Train on images uint8 [N, H, W, 3] with keypoints float [N, K, 3]; predict the test images after each
    checkpoint. Progress: ("training heatmaps", step, total) and ("testing", images done, E x N_test)."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be a uint8 array [N, H, W, 3], got {getattr(images, 'shape', type(images))}")
    if len(images) == 0 or keypoints.shape != (len(images), len(names), 3):
        raise ValueError(f"need keypoints [{len(images)}, {len(names)}, 3] for {len(images)} images (at least "
                         f"one), got {list(keypoints.shape)}")
    if settings.epochs < 1 or settings.batch < 1 or (settings.steps_per_epoch or 1) < 1:
        raise ValueError("epochs, batch and steps_per_epoch must be at least 1")
    threads_before = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        return _train(images, keypoints, list(names), settings, test_images, progress)
    finally:
        torch.set_num_threads(threads_before)


def _train(images, keypoints, names, settings, test_images, progress) -> HeatmapRun:
    device = resolve_device(settings.device)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = build_segmenter(settings.model, len(names), **settings.model_options)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    sigma = settings.sigma or DEFAULT_SIGMA
    perm = flip_permutation(names)
    height, width = images.shape[1:3]
    batches = _batch_stream(len(images), settings.batch, np.random.default_rng(settings.seed))
    flips = np.random.default_rng([settings.seed, 1])
    steps = settings.steps_per_epoch or len(_batches(np.arange(len(images)), settings.batch))
    n_test, k = len(test_images), len(names)
    positions = np.zeros((settings.epochs, n_test, k, 2), np.float32)
    confidence = np.zeros((settings.epochs, n_test, k), np.float32)
    losses: list[float] = []
    total = settings.epochs * steps
    progress("training heatmaps", 0, total)
    if n_test:
        progress("testing", 0, settings.epochs * n_test)
    for epoch in range(settings.epochs):
        model.train()
        loss_sum, counted = 0.0, 0.0
        for step in range(steps):
            batch = next(batches)
            x, points = images[batch], keypoints[batch]  # copies (fancy indexing)
            if settings.flip:
                flipped = flips.random(len(batch)) < 0.5
                x[flipped] = x[flipped, :, ::-1]
                points[flipped] = flip_keypoints(points[flipped], width, perm)
            target, weight = gaussian_heatmaps(torch.from_numpy(points).to(device), height, width, sigma)
            pixels = float(weight.sum()) * height * width
            if pixels:  # nothing annotated in this batch: no loss, no step
                squared = (model(_to_input(torch.from_numpy(x).to(device))) - target) ** 2
                loss_total = (squared * weight[..., None, None]).sum()
                optimizer.zero_grad(set_to_none=True)
                (loss_total / pixels).backward()
                optimizer.step()
                loss_sum += float(loss_total.detach())
                counted += pixels
            progress("training heatmaps", epoch * steps + step + 1, total)
        losses.append(loss_sum / counted if counted else float("nan"))
        if n_test:
            positions[epoch], confidence[epoch] = predict_keypoints(model, test_images, device, settings.test_batch)
            progress("testing", (epoch + 1) * n_test, settings.epochs * n_test)
    model.eval()
    return HeatmapRun(model, losses, positions, confidence, steps, time.perf_counter() - start)

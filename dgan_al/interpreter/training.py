"""Training the stacked ensemble on a pool of sampled pixels, in bounded memory.

The reference keeps every pixel's D-wide feature of every annotated image in RAM (~150 GB for 16 images
at 512px). Here:

1. ``build_pixel_pool``: for each annotated image in turn (items may be streamed from a disk cache),
   draw ``pixels_per_image`` distinct pixel coordinates (``sampling.sample_training_pixels``: every
   connected region at least once, classes balanced) and gather the features of just those pixels with
   the exact bilinear rule (``bilinear.gather_features``), stored as float16. Memory: pool size x D x 2
   bytes, independent of the resolution; the full-resolution feature tensor is never built.
2. ``bootstrap_samples``: each member gets its own sample of the pool (bagging): every region
   representative once, the rest drawn with replacement, rounded up to a whole number of batches.
3. ``train_members``: Adam (lr 1e-3), cross-entropy, batches of ``batch_size`` pixels per member (the
   paper's 64, or the default 256: see ``PixelEnsemble``), all members in one batched step (the loss
   is the sum of the members' mean losses, so each member's gradient is exactly its own). Each epoch
   is one pass over each member's sample in a fresh order.

Keypoint heads (``keypoints``): an item may carry a third element, its keypoint array (``keypoints.
keypoint_array``; None: not annotated for keypoints). When the ensemble has K keypoints, the pool also
holds, per pixel, K heatmap targets and weights (0 for a name the image is not annotated for), the pixels
near each placed point are added to the image's sample (drawn from a stream of their own, so the class
sample is the one drawn without keypoints; their nearest pixels are bootstrap representatives), and each
member's loss is its class cross-entropy (mean over the pixels with a class label) plus
``keypoint_weight`` x the squared heatmap error summed over keypoints, mean over the batch's pixels.

Stopping rule: after each epoch, the members' mean training loss is compared with the best epoch so
far; training stops at the first epoch that does not improve it by at least ``tol`` (relative), or after
``max_epochs`` epochs, whichever comes first. Everything is seeded: same items, same seed, same weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from dgan_al.geometry import LabelGeometry
from dgan_al.interpreter.bilinear import gather_features
from dgan_al.interpreter.keypoints import heatmap_targets, keypoint_array, keypoint_disc_pixels
from dgan_al.interpreter.network import StackedMLP
from dgan_al.interpreter.sampling import IGNORE, sample_training_pixels
from dgan_al.progress import ProgressCallback, silent


@dataclass
class PixelPool:
    """The sampled training pixels of all annotated images."""

    features: torch.Tensor  # float16 [N, D]
    labels: torch.Tensor  # int64 [N]
    representative: torch.Tensor  # bool [N]: the pixel stands for its connected region
    pixels_per_image: list[int] = field(default_factory=list)
    heat_targets: torch.Tensor | None = None  # float32 [N, K] keypoint heatmap targets (None: no heads)
    heat_weights: torch.Tensor | None = None  # float32 [N, K] 1 where the image is annotated for that name

    @property
    def nbytes(self) -> int:
        return self.features.numel() * self.features.element_size()


def build_pixel_pool(
    items: Iterable[tuple[list[torch.Tensor], np.ndarray]],
    geometry: LabelGeometry,
    pixels_per_image: int,
    class_balance: float,
    seed: int,
    check_item=None,
    progress: ProgressCallback = silent,
    total: int | None = None,
    keypoint_names: list[str] | None = None,
    sigma: float = 2.0,
    keypoint_pixels: int = 32,
) -> PixelPool:
    """Sample and gather the training pixels of each (feature maps, mask[, keypoints]) item.

    See the module docstring. ``check_item(index, maps, mask)`` validates an item before it is used
    (raises on a bad one). With ``keypoint_names`` the pool carries heatmap targets (``keypoints``).
    """
    features, labels, representative, counts = [], [], [], []
    heat_targets, heat_weights = [], []
    n_keypoints = len(keypoint_names or [])
    for index, item in enumerate(items):
        maps, mask = item[0], item[1]
        if check_item is not None:
            check_item(index, maps, mask)
        mask = np.asarray(mask)
        rng = np.random.default_rng([seed, 1, index])
        ys, xs, n_regions = sample_training_pixels(mask, pixels_per_image, rng, class_balance)
        if n_keypoints:
            keypoints = keypoint_array(item[2] if len(item) > 2 else None, keypoint_names)
            if keypoints is None:
                target = np.zeros((len(ys), n_keypoints), np.float32)
                weight = target.copy()
            else:
                taken = np.zeros(mask.size, dtype=bool)
                taken[ys * mask.shape[1] + xs] = True
                kys, kxs, n_nearest = keypoint_disc_pixels(
                    keypoints, mask.shape, sigma, keypoint_pixels, np.random.default_rng([seed, 4, index]), taken
                )
                # region representatives, then the keypoints' nearest pixels (also representatives), then the rest
                ys = np.concatenate([ys[:n_regions], kys[:n_nearest], ys[n_regions:], kys[n_nearest:]])
                xs = np.concatenate([xs[:n_regions], kxs[:n_nearest], xs[n_regions:], kxs[n_nearest:]])
                n_regions += n_nearest
                target, weight = heatmap_targets(ys, xs, keypoints, sigma)
            heat_targets.append(torch.from_numpy(target))
            heat_weights.append(torch.from_numpy(weight))
        maps = [torch.as_tensor(m) for m in maps]
        gathered = gather_features(maps, torch.from_numpy(ys), torch.from_numpy(xs), geometry)  # [n, D]
        features.append(gathered.to("cpu", torch.float16))  # the pool lives on the host until training
        labels.append(torch.from_numpy(mask[ys, xs].astype(np.int64)))
        flags = torch.zeros(len(ys), dtype=torch.bool)
        flags[:n_regions] = True  # sample_training_pixels puts one pixel per region first
        representative.append(flags)
        counts.append(len(ys))
        progress("sampling annotated pixels", index + 1, total)
    if not features:
        raise ValueError("fit needs at least one annotated image, got none")
    pool = PixelPool(torch.cat(features), torch.cat(labels), torch.cat(representative), counts)
    if n_keypoints:
        pool.heat_targets, pool.heat_weights = torch.cat(heat_targets), torch.cat(heat_weights)
    if len(pool.labels) == 0:
        raise ValueError("the annotations label no pixel at all (every mask pixel is IGNORE=255)")
    return pool


def bootstrap_samples(pool: PixelPool, n_members: int, batch_size: int, seed: int) -> torch.Tensor:
    """Each member's own sample of pool indices: int64 [M, S], S a multiple of ``batch_size``.

    Every region representative is in every sample once; the other entries are drawn with replacement
    from the rest of the pool (or from the representatives if there is no rest).
    """
    n = len(pool.labels)
    reps = torch.nonzero(pool.representative).flatten().numpy()
    rest = torch.nonzero(~pool.representative).flatten().numpy()
    size = max(batch_size, math.ceil(n / batch_size) * batch_size)
    size = max(size, math.ceil(len(reps) / batch_size) * batch_size)
    draw_from = rest if len(rest) else reps
    samples = np.empty((n_members, size), dtype=np.int64)
    for member in range(n_members):
        rng = np.random.default_rng([seed, 2, member])
        samples[member, : len(reps)] = reps
        samples[member, len(reps) :] = rng.choice(draw_from, size=size - len(reps), replace=True)
    return torch.from_numpy(samples)


def _adam(params, lr: float) -> torch.optim.Optimizer:
    """Adam; the fused kernel where this torch build has it for the device (same maths, fewer passes)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused Adam for this device / torch version
        return torch.optim.Adam(params, lr=lr, foreach=True)


@dataclass
class EpochRecord:
    epoch: int
    loss: float  # mean over members of the epoch's mean cross-entropy
    accuracy: float  # mean over members of the fraction of sampled pixels classified right


def train_members(
    net: StackedMLP,
    pool: PixelPool,
    samples: torch.Tensor,
    batch_size: int,
    lr: float,
    max_epochs: int,
    tol: float,
    seed: int,
    progress: ProgressCallback = silent,
    keypoint_weight: float = 1.0,
) -> list[EpochRecord]:
    """Train all members together until the stopping rule (module docstring) says stop.

    With heatmap targets in the pool, the net's last K outputs are the heads (see the module docstring).
    """
    device = net.w1.device
    features = pool.features.to(device)
    labels = pool.labels.to(device)
    samples = samples.to(device)
    n_members, size = samples.shape
    if pool.heat_targets is None:
        def batch_loss(index):
            """Per member the class cross-entropy of a batch [M, b] of pixels, correct and counted pixels."""
            y = labels[index]  # [M, b]
            logits = net(features[index].to(torch.float32))  # [M, b, K]
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none"
            ).view(n_members, -1).mean(1)
            return loss, (logits.argmax(-1) == y).sum(), y.numel()
    else:  # keypoint heads: class cross-entropy plus heatmap L2 on the net's last outputs
        targets, weights = pool.heat_targets.to(device), pool.heat_weights.to(device)
        n_heat = targets.shape[1]

        def batch_loss(index):
            y = labels[index]
            out = net(features[index].to(torch.float32))  # [M, b, K + n_heat]
            logits, heat = out[..., : out.shape[-1] - n_heat], out[..., out.shape[-1] - n_heat :]
            labelled = (y != IGNORE).to(torch.float32)
            ce = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none", ignore_index=IGNORE
            ).view(n_members, -1)
            ce = ce.sum(1) / labelled.sum(1).clamp(min=1.0)
            l2 = ((heat - targets[index]).square() * weights[index]).sum(-1).mean(1)
            correct = ((logits.argmax(-1) == y).to(torch.float32) * labelled).sum()
            return ce + keypoint_weight * l2, correct, labelled.sum()

    steps = size // batch_size
    optimizer = _adam(net.parameters(), lr)
    shuffle = torch.Generator(device="cpu").manual_seed(seed)
    history: list[EpochRecord] = []
    best = math.inf
    net.train()
    for epoch in range(max_epochs):
        order = torch.stack([torch.randperm(size, generator=shuffle) for _ in range(n_members)]).to(device)
        epoch_order = torch.gather(samples, 1, order)  # [M, S] this epoch's pixel order per member
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        counted = 0.0
        for step in range(steps):
            index = epoch_order[:, step * batch_size : (step + 1) * batch_size]  # [M, b]
            loss_per_member, right, seen = batch_loss(index)
            optimizer.zero_grad(set_to_none=True)
            loss_per_member.sum().backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += loss_per_member.sum()
                correct += right
                counted += float(seen)
            progress("training interpreter", epoch * steps + step + 1, max_epochs * steps)
        loss = float(loss_sum) / (steps * n_members)
        history.append(EpochRecord(epoch + 1, loss, float(correct) / max(counted, 1.0)))
        if loss > best * (1.0 - tol):
            break
        best = loss
    progress("training interpreter", max_epochs * steps, max_epochs * steps)
    net.eval()
    return history

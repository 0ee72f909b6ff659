"""The plain reference interpreter: datasetGAN_release's algorithm, for checking and benchmarking only.

Nothing in dgan-al runs this on its hot path. Tests compare the fast path against it; the benchmark
measures both. It is deliberately written the way nv-tlabs/datasetGAN_release does it
(``train_interpreter.py``: ``latent_to_image(..., return_upsampled_layers=True)``, ``generate_data``):

1. upsample every feature map bilinearly (align_corners=False) to the canvas and ``torch.cat`` them to
   [1, D, H, W]; crop the label window; reshape to [H*W, D];
2. run each member's ``nn.Sequential`` (Linear, ReLU, BatchNorm1d, Linear, ReLU, BatchNorm1d, Linear;
   BatchNorm in eval mode) in turn on all pixels at once, in float32;
3. JS = entropy of the mean softmax minus the mean of the member entropies (on probabilities, the
   corrected form of the reference's averaged-logits bug), majority vote with ``scipy.stats.mode``
   (ties to the smaller class id), image scores: the sum of JS and the mean of the top 10% of pixels.

It also gives the training memory that the reference design needs: every pixel's D-wide feature of
every annotated image, held as float16 and then copied to float32.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats
from torch.distributions import Categorical

from dgan_al.geometry import LabelGeometry
from dgan_al.interpreter.network import StackedMLP


def reference_members(net: StackedMLP) -> list[nn.Sequential]:
    """The stacked ensemble as M separate ``nn.Sequential`` pixel classifiers (eval mode), same weights."""
    m, (h1, h2), k, d = net.n_members, net.hidden, net.n_classes, net.in_features
    members = []
    with torch.no_grad():
        for i in range(m):
            seq = nn.Sequential(
                nn.Linear(d, h1), nn.ReLU(), nn.BatchNorm1d(h1),
                nn.Linear(h1, h2), nn.ReLU(), nn.BatchNorm1d(h2),
                nn.Linear(h2, k),
            )
            for linear, w, b in ((seq[0], net.w1, net.b1), (seq[3], net.w2, net.b2), (seq[6], net.w3, net.b3)):
                linear.weight.copy_(w[i].t())
                linear.bias.copy_(b[i])
            for bn, stacked, h in ((seq[2], net.bn1, h1), (seq[5], net.bn2, h2)):
                part = slice(i * h, (i + 1) * h)
                bn.weight.copy_(stacked.weight[part])
                bn.bias.copy_(stacked.bias[part])
                bn.running_mean.copy_(stacked.running_mean[part])
                bn.running_var.copy_(stacked.running_var[part])
                bn.eps = stacked.eps
            members.append(seq.eval())
    return members


def upsampled_features(maps: list[torch.Tensor], geometry: LabelGeometry) -> torch.Tensor:
    """One image's maps [1, C_l, h_l, w_l] -> the full-resolution concatenated features [H*W, D]."""
    top, left, height, width = geometry.crop
    upsampled = [
        F.interpolate(m.float(), size=geometry.canvas, mode="bilinear", align_corners=False) for m in maps
    ]
    features = torch.cat(upsampled, dim=1)[:, :, top : top + height, left : left + width]  # [1, D, H, W]
    return features.reshape(features.shape[1], -1).t()  # [H*W, D]


@torch.no_grad()
def reference_interpret(
    members: list[nn.Sequential], maps: list[torch.Tensor], geometry: LabelGeometry
) -> dict[str, np.ndarray | float]:
    """The reference per-image inference. maps: [1, C_l, h_l, w_l] per layer (one image).

    Returns ``labels`` int64 [H, W], ``js`` float32 [H, W], ``mean_probabilities`` float32 [K, H, W],
    ``score_sum`` and ``score_top10`` (floats).
    """
    height, width = geometry.size
    features = upsampled_features(maps, geometry)  # [HW, D]
    probs, entropies, votes = [], [], []
    for member in members:
        logits = member(features)  # [HW, K]
        entropies.append(Categorical(logits=logits).entropy())
        probs.append(torch.softmax(logits, dim=1))
        votes.append(logits.argmax(1).cpu().numpy()[:, None])
    mean_probs = torch.stack(probs).mean(0)  # [HW, K]
    js = Categorical(probs=mean_probs).entropy() - torch.stack(entropies).mean(0)  # [HW]
    top_k = js.sort()[0][-max(1, int(js.shape[0] / 10)) :].mean()
    labels = stats.mode(np.concatenate(votes, axis=1), axis=1, keepdims=False).mode  # [HW], smallest mode
    return {
        "labels": labels.reshape(height, width).astype(np.int64),
        "js": js.reshape(height, width).cpu().numpy().astype(np.float32),
        "mean_probabilities": mean_probs.t().reshape(-1, height, width).cpu().numpy(),
        "score_sum": float(js.double().sum()),
        "score_top10": float(top_k),
    }


def reference_training_bytes(n_images: int, height: int, width: int, feature_width: int) -> int:
    """Memory the reference's ``prepare_data`` + ``trainData`` hold: every pixel's features, fp16 + fp32.

    ``all_feature_maps_train`` is a float16 [N*H*W, D] array and ``torch.FloatTensor(...)`` makes a float32
    copy of it: 6 bytes per pixel per feature (the masks, 6 bytes per pixel, are negligible beside it).
    """
    return n_images * height * width * feature_width * (2 + 4)

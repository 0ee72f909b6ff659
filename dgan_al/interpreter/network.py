"""The interpreter's networks: N pixel MLPs stored as stacked weights and run together.

Each member is the paper's MLP (PAPER.md, "Style interpreter"):

    Linear(D, h1) -> ReLU -> BatchNorm1d(h1) -> Linear(h1, h2) -> ReLU -> BatchNorm1d(h2) -> Linear(h2, K)

with (h1, h2) = (128, 32) for fewer than 32 classes and (256, 128) otherwise, Linear weights N(0, 0.02),
biases 0, BatchNorm at PyTorch's defaults (weight 1, bias 0, momentum 0.1, eps 1e-5). The M members'
weights are stacked ([M, in, out]) so one ``bmm`` runs a layer for all of them; member m's BatchNorm
is channels ``m*h .. m*h + h - 1`` of one ``BatchNorm1d(M*h)``, which normalises each (member, unit)
over the batch exactly as M separate BatchNorms would.

For inference ``fold()`` turns the eval-mode network into ``FoldedWeights``: each BatchNorm is an affine
map that is merged into the Linear after it (exact up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


def paper_hidden_sizes(n_classes: int) -> tuple[int, int]:
    """The reference code's hidden widths: (128, 32) below 32 classes, else (256, 128)."""
    return (128, 32) if n_classes < 32 else (256, 128)


@dataclass
class FoldedWeights:
    """Eval-mode ensemble with BatchNorm folded in. M members, D inputs, hidden h1/h2, K classes.

    The first layer puts members side by side: column ``m*h1 + j`` of ``w1`` is unit j of member m.
    """

    w1: torch.Tensor  # [D, M*h1]
    b1: torch.Tensor  # [M*h1]
    w2: torch.Tensor  # [M, h1, h2]   BatchNorm 1 folded in
    b2: torch.Tensor  # [M, h2]
    w3: torch.Tensor  # [M, h2, K]    BatchNorm 2 folded in
    b3: torch.Tensor  # [M, K]
    bn1_scale: torch.Tensor  # [M*h1]  BatchNorm 1 as y = scale * x + shift (for the embedding)
    bn1_shift: torch.Tensor  # [M*h1]
    n_heat: int = 0  # the last n_heat outputs of w3 / b3 are keypoint heatmaps, not class logits

    @property
    def n_members(self) -> int:
        return self.w2.shape[0]

    @property
    def n_classes(self) -> int:
        return self.w3.shape[2] - self.n_heat

    def to(self, device: torch.device) -> "FoldedWeights":
        return FoldedWeights(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.__dict__.items()})


class StackedMLP(nn.Module):
    """M pixel MLPs with stacked weights. ``forward(x [M, B, D]) -> logits [M, B, K]``."""

    def __init__(self, n_members: int, in_features: int, hidden: tuple[int, int], n_classes: int):
        super().__init__()
        m, (h1, h2), k = n_members, hidden, n_classes
        self.n_members, self.in_features, self.hidden, self.n_classes = m, in_features, (h1, h2), k
        self.w1 = nn.Parameter(torch.empty(m, in_features, h1))
        self.b1 = nn.Parameter(torch.zeros(m, h1))
        self.bn1 = nn.BatchNorm1d(m * h1)
        self.w2 = nn.Parameter(torch.empty(m, h1, h2))
        self.b2 = nn.Parameter(torch.zeros(m, h2))
        self.bn2 = nn.BatchNorm1d(m * h2)
        self.w3 = nn.Parameter(torch.empty(m, h2, k))
        self.b3 = nn.Parameter(torch.zeros(m, k))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """The reference initialisation: Linear weights N(0, 0.02), biases 0, BatchNorm defaults."""
        for w in (self.w1, self.w2, self.w3):
            w.normal_(0.0, 0.02, generator=generator)
        for b in (self.b1, self.b2, self.b3):
            b.zero_()
        for bn in (self.bn1, self.bn2):
            bn.reset_parameters()

    def _batch_norm(self, bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
        m, b, h = x.shape  # [M, B, h] -> BatchNorm1d over [B, M*h] -> [M, B, h]
        y = bn(x.transpose(0, 1).reshape(b, m * h))
        return y.reshape(b, m, h).transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(torch.baddbmm(self.b1.unsqueeze(1), x, self.w1))  # [M, B, h1]
        h = self._batch_norm(self.bn1, h)
        h = F.relu(torch.baddbmm(self.b2.unsqueeze(1), h, self.w2))  # [M, B, h2]
        h = self._batch_norm(self.bn2, h)
        return torch.baddbmm(self.b3.unsqueeze(1), h, self.w3)  # [M, B, K]

    @torch.no_grad()
    def fold(self, n_heat: int = 0) -> FoldedWeights:
        """The eval-mode network as ``FoldedWeights`` (float32); its last ``n_heat`` outputs are heatmaps."""
        m, (h1, h2) = self.n_members, self.hidden

        def affine(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            return scale, bn.bias - bn.running_mean * scale

        s1, t1 = affine(self.bn1)  # [M*h1]
        s2, t2 = affine(self.bn2)  # [M*h2]
        s1m, t1m, s2m, t2m = s1.view(m, h1), t1.view(m, h1), s2.view(m, h2), t2.view(m, h2)
        w2 = s1m.unsqueeze(2) * self.w2  # BN1 then Linear2: (s*x + t) @ W + b = x @ (s W) + (t @ W + b)
        b2 = self.b2 + torch.bmm(t1m.unsqueeze(1), self.w2).squeeze(1)
        w3 = s2m.unsqueeze(2) * self.w3
        b3 = self.b3 + torch.bmm(t2m.unsqueeze(1), self.w3).squeeze(1)
        w1 = self.w1.permute(1, 0, 2).reshape(self.in_features, m * h1)  # [D, M*h1]
        return FoldedWeights(
            w1=w1.float().contiguous(), b1=self.b1.reshape(-1).float().clone(),
            w2=w2.float().contiguous(), b2=b2.float(), w3=w3.float().contiguous(), b3=b3.float(),
            bn1_scale=s1.float().clone(), bn1_shift=t1.float().clone(), n_heat=int(n_heat),
        )

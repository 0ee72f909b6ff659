"""The settings of ``simulate``, their defaults in one place, and the ``quick`` smoke-run preset.

The simulated loop is the shipped loop: the image score resolves ``score_pixels`` as ``next-round``
does (``auto``: the measured CPU grid, every pixel on a GPU), training samples the loop's
``pixels_per_image``, and exports are pre-filled with the current prediction (so the clicks with
pre-fill are real). Errors name the settings; the CLI maps them to its flags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from dgan_al.errors import UserError
from dgan_al.generators.toy_faces.visible import TRUTHS
from dgan_al.interpreter.ensemble import scoring_pixels
from dgan_al.strategies import STRATEGIES, exported
from dgan_al.workflows.embedding import EMBEDDINGS
from dgan_al.workspace.config import EnsembleSettings, SelectionSettings

_SEL, _ENS = SelectionSettings(), EnsembleSettings()


@dataclass(kw_only=True, frozen=True)
class SimulateSettings:
    strategies: tuple[str, ...] = ("random", "uncertainty", "al", "rare")
    rounds: int = 4
    per_round: int = _SEL.annotate  # K: images annotated per round
    repeats: int = 6
    pool_size: int = 1000
    val_size: int = 60
    test_size: int = 200
    embedding: str = _SEL.embedding  # coreset embedding: "activations" or "w"
    skip_top: float = _SEL.skip_top
    band: float = _SEL.band
    centers: int = 0  # al's k-center centres; 0 = 2K
    rare_power: float = _SEL.rare_power
    score_pixels: str = _SEL.score_pixels  # resolved as next-round resolves it
    eval_pixels: str = "grid:2"  # held-out pixels scored: a quarter of each image, an unbiased estimate
    members: int = _ENS.members
    epochs: int = _ENS.epochs
    pixels_per_image: int = _ENS.pixels_per_image
    prefill: bool = True
    truth: str = "visible"  # what the oracle labels and the held-out sets are scored against
    seed: int = 0
    device: str = "cpu"

    @classmethod
    def quick(cls, **changes) -> "SimulateSettings":
        """A smoke run by hand (minutes, not hours): 2 repeats of 2 rounds on a small pool, a smaller ensemble."""
        return replace(cls(strategies=("random", "al", "rare"), rounds=2, per_round=3, repeats=2, pool_size=150,
                           val_size=12, test_size=20, members=4, epochs=3, pixels_per_image=1024), **changes)

    @property
    def al_centers(self) -> int:
        return self.centers or 2 * self.per_round

    def as_dict(self) -> dict:
        return asdict(self) | {"strategies": list(self.strategies)}

    def check(self) -> None:
        """Raise a UserError naming every bad setting at once."""
        problems = []
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            problems.append(f"strategies: unknown {unknown}; choose from {', '.join(STRATEGIES)}")
        if self.rounds < 1 or self.per_round < 1 or self.repeats < 1:
            problems.append("rounds, per_round and repeats must be at least 1")
        if self.val_size < 1 or self.test_size < 1:
            problems.append("val_size and test_size must be at least 1")
        if self.embedding not in EMBEDDINGS:
            problems.append(f"embedding must be one of {', '.join(EMBEDDINGS)}, got {self.embedding!r}")
        if self.truth not in TRUTHS:
            problems.append(f"truth must be one of {', '.join(TRUTHS)}, got {self.truth!r}")
        if self.rare_power < 0:
            problems.append(f"rare_power must be >= 0, got {self.rare_power}")
        if not (0 <= self.skip_top < 1 and 0 < self.band <= 1 - self.skip_top):
            problems.append("need 0 <= skip_top < 1 and 0 < band <= 1 - skip_top")
        biggest = max((exported(s, self.per_round, self.al_centers) for s in self.strategies if s in STRATEGIES),
                      default=self.per_round)
        least = 2 + self.rounds * biggest
        if "al" in self.strategies and self.band > 0:  # al's last band must still hold its centres
            least = 2 + (self.rounds - 1) * self.al_centers + int(np.ceil((self.al_centers + 1) / self.band))
        if self.pool_size < least:
            problems.append(f"pool_size {self.pool_size} is too small for these strategies and rounds; "
                            f"use at least {least}")
        if self.score_pixels not in ("auto", "full") and not self.score_pixels.startswith("grid:"):
            problems.append(f"score_pixels must be auto, full or grid:S, got {self.score_pixels!r}")
        for name in ("score_pixels", "eval_pixels"):
            value = getattr(self, name)
            if value != "auto":
                try:
                    scoring_pixels(value, (16, 16))
                except ValueError:
                    problems.append(f"{name} must be full, grid:S or subset:N, got {value!r}")
        if self.members < 1 or self.epochs < 1 or self.pixels_per_image < 16:
            problems.append("need members >= 1, epochs >= 1 and pixels_per_image >= 16")
        if problems:
            raise UserError("; ".join(problems), fix="change these settings")

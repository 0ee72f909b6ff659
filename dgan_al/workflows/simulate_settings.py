"""The settings of ``simulate``, their defaults in one place, and the ``quick`` smoke-run preset.

The simulated loop is the shipped loop: the image score resolves ``score_pixels`` as ``next-round``
does (``auto``: the measured CPU grid, every pixel on a GPU), training samples the loop's
``pixels_per_image``, and exports are pre-filled with the current prediction (so the clicks with
pre-fill are real). Errors name the settings; the CLI maps them to its flags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from dgan_al.errors import UserError, quote
from dgan_al.generators.toy_faces.visible import TRUTHS
from dgan_al.interpreter.ensemble import scoring_pixels
from dgan_al.strategies import STRATEGIES, exported
from dgan_al.workflows.embedding import EMBEDDINGS
from dgan_al.workspace.config import EnsembleSettings, RunSettings, SelectionSettings

_SEL, _ENS, _RUN = SelectionSettings(), EnsembleSettings(), RunSettings()


# settings added after folders were made with the value they then ran with
_BEFORE_THE_SETTING = {"prefill_min_annotations": 1,  # pre-filled every round
                       "switch_at": _SEL.switch_at}  # no typical-al run: the value changes nothing


def upgrade_settings(saved: dict) -> dict:
    """A folder's ``settings.json`` with the settings it predates filled in as it ran."""
    return {**_BEFORE_THE_SETTING, **saved}


@dataclass(kw_only=True, frozen=True)
class SimulateSettings:
    # the reference (and the naive way), the paper's, and the two for small budgets (docs/effort.md)
    strategies: tuple[str, ...] = ("random", "al", "typical", "typical-al")
    rounds: int = 3
    per_round: int = _SEL.annotate  # K: images annotated per round
    repeats: int = 6
    pool_size: int = 1000
    val_size: int = 60
    test_size: int = 400  # one run's mIoU then carries a sampling error under 0.005 (docs/simulate.md)
    embedding: str = _SEL.embedding  # coreset embedding: "activations" or "w"
    skip_top: float = _SEL.skip_top
    band: float = _SEL.band
    centers: int = 0  # al's k-center centres; 0 = 2K
    rare_power: float = _SEL.rare_power
    switch_at: int = _SEL.switch_at  # typical-al: al from this many annotated images on
    score_pixels: str = _SEL.score_pixels  # resolved as next-round resolves it
    eval_pixels: str = "grid:4"  # held-out pixels scored: one in 16, the same for every run (paired)
    members: int = _ENS.members
    epochs: int = _ENS.epochs
    pixels_per_image: int = _ENS.pixels_per_image
    prefill: bool = _RUN.prefill
    prefill_min_annotations: int = _RUN.prefill_min_annotations  # pre-fill from this many annotations on
    truth: str = "visible"  # what the oracle labels and the held-out sets are scored against
    seed: int = 0
    device: str = "cpu"

    @classmethod
    def quick(cls, **changes) -> "SimulateSettings":
        """A smoke run by hand (minutes, not hours): 2 repeats of 2 rounds on a small pool, a smaller ensemble;
        the pre-fill starts at round 2 (4 annotations), and typical-al switches to al there, so that both
        kinds of export and both of its branches run."""
        return replace(cls(strategies=("random", "al", "typical-al"), rounds=2, per_round=3, repeats=2, pool_size=150,
                           val_size=12, test_size=20, members=4, epochs=3, pixels_per_image=1024,
                           prefill_min_annotations=4, switch_at=4), **changes)

    @property
    def al_centers(self) -> int:
        return self.centers or 2 * self.per_round

    def as_dict(self) -> dict:
        return asdict(self) | {"strategies": list(self.strategies)}

    def check(self) -> None:
        """Raise a UserError naming the first bad setting (``setting=``; the CLI shows it as its flag)."""
        for setting, problem in self._problems():
            raise UserError(problem, setting=setting, fix="change this setting")

    def _problems(self):
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            yield "strategies", f"unknown {unknown}; choose from {', '.join(STRATEGIES)}"
        for name in ("rounds", "per_round", "repeats", "val_size", "test_size"):
            if getattr(self, name) < 1:
                yield name, f"must be at least 1, got {getattr(self, name)}"
        if self.embedding not in EMBEDDINGS:
            yield "embedding", f"must be one of {', '.join(EMBEDDINGS)}, got {quote(self.embedding)}"
        if self.truth not in TRUTHS:
            yield "truth", f"must be one of {', '.join(TRUTHS)}, got {quote(self.truth)}"
        if self.prefill_min_annotations < 1:
            yield "prefill_min_annotations", f"must be at least 1, got {self.prefill_min_annotations}"
        if self.switch_at < 1:
            yield "switch_at", f"must be at least 1, got {self.switch_at}"
        if self.rare_power < 0:
            yield "rare_power", f"must be >= 0, got {self.rare_power}"
        if not 0 <= self.skip_top < 1:
            yield "skip_top", f"must be in [0, 1), got {self.skip_top}"
        if not 0 < self.band <= 1 - self.skip_top:
            yield "band", f"must be in (0, 1 - skip_top], got {self.band}"
        biggest = max((exported(s, self.per_round, self.al_centers) for s in self.strategies if s in STRATEGIES),
                      default=self.per_round)
        least = 2 + self.rounds * biggest
        if {"al", "typical-al"} & set(self.strategies) and 0 < self.band:  # al's last band must still hold its centres
            least = 2 + (self.rounds - 1) * self.al_centers + int(np.ceil((self.al_centers + 1) / self.band))
        if self.pool_size < least:
            yield "pool_size", f"{self.pool_size} is too small for these strategies and rounds; use at least {least}"
        if self.score_pixels not in ("auto", "full") and not self.score_pixels.startswith("grid:"):
            yield "score_pixels", f"must be auto, full or grid:S, got {quote(self.score_pixels)}"
        for name in ("score_pixels", "eval_pixels"):
            value = getattr(self, name)
            if value != "auto":
                try:
                    scoring_pixels(value, (16, 16))
                except ValueError:
                    yield name, f"must be full, grid:S or subset:N, got {quote(value)}"
        for name, least_value in (("members", 1), ("epochs", 1), ("pixels_per_image", 16)):
            if getattr(self, name) < least_value:
                yield name, f"must be at least {least_value}, got {getattr(self, name)}"

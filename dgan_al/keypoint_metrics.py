"""Keypoint metrics: PCK (percentage of correct keypoints) per name, and false positives reported apart.

Conventions, shared by ``evaluate``'s cross-validation and its downstream test:

- Truth is float ``[N, K, 3]`` (x, y, v) in label pixels, COCO visibility: v = 2 visible, v = 1 there but
  occluded, v = 0 not visible; a NaN row is a name the image was not annotated for.
- A prediction is a position ``[N, K, 2]`` and a presence ``[N, K]`` (confidence at or above the setting).
- PCK@a of a name: over the images where the truth is *visible* (v = 2), the share whose predicted position
  lies within ``a`` x the image's longer side of it (Euclidean). The position counts whatever its
  confidence (as in PCK's usual definition, every visible keypoint is predicted); a visible point that the
  predictor calls absent is also counted as ``missed``, apart.
- Occluded truth (v = 1) is in neither count: it is not visible, and not absent either.
- A false positive is a name predicted present where the truth says not visible (v = 0), reported as a
  count over ``absent`` such truths, never mixed into PCK.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PCK_THRESHOLDS = (0.05, 0.1)


@dataclass
class PCKCounts:
    """Counts that add up over images and folds; ``pck`` turns them into shares.

    hits:            int64 [T, K] visible truths predicted within threshold t
    visible:         int64 [K] truths with v = 2
    missed:          int64 [K] visible truths predicted absent (confidence below the setting)
    absent:          int64 [K] truths with v = 0
    false_positive:  int64 [K] absent truths predicted present
    error_sum:       float64 [K] summed distance (pixels) of the visible truths' predictions, for the mean error
    """

    names: list[str]
    thresholds: tuple[float, ...] = PCK_THRESHOLDS
    hits: np.ndarray = field(default=None)
    visible: np.ndarray = field(default=None)
    missed: np.ndarray = field(default=None)
    absent: np.ndarray = field(default=None)
    false_positive: np.ndarray = field(default=None)
    error_sum: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        k, t = len(self.names), len(self.thresholds)
        for name, shape in (("hits", (t, k)), ("visible", (k,)), ("missed", (k,)), ("absent", (k,)),
                            ("false_positive", (k,))):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(shape, dtype=np.int64))
        if self.error_sum is None:
            self.error_sum = np.zeros(k, dtype=np.float64)

    def __add__(self, other: "PCKCounts") -> "PCKCounts":
        if list(other.names) != list(self.names) or tuple(other.thresholds) != tuple(self.thresholds):
            raise ValueError("PCK counts of different keypoints or thresholds cannot be added")
        return PCKCounts(list(self.names), tuple(self.thresholds), self.hits + other.hits,
                         self.visible + other.visible, self.missed + other.missed, self.absent + other.absent,
                         self.false_positive + other.false_positive, self.error_sum + other.error_sum)

    def pck(self) -> np.ndarray:
        """float64 [T, K]: PCK per threshold and name; NaN where no truth is visible."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.visible > 0, self.hits / np.maximum(self.visible, 1), np.nan)

    def mean_error(self) -> np.ndarray:
        """float64 [K + 1]: mean distance in pixels of each name's visible truths' predictions, then over all
        visible truths; NaN where none. PCK saturates when a threshold is loose; this does not."""
        with np.errstate(invalid="ignore", divide="ignore"):
            per_name = np.where(self.visible > 0, self.error_sum / np.maximum(self.visible, 1), np.nan)
        total = self.visible.sum()
        return np.append(per_name, self.error_sum.sum() / total if total else np.nan)

    def mean_pck(self) -> np.ndarray:
        """float64 [T]: over all visible truths of all names (each point weighs the same); NaN if none."""
        total = self.visible.sum()
        return self.hits.sum(1) / total if total else np.full(len(self.thresholds), np.nan)

    def to_dict(self) -> dict:
        pck = self.pck()
        return {"thresholds": list(self.thresholds), "names": list(self.names),
                "pck": {f"{t:g}": {n: _round(pck[i, k]) for k, n in enumerate(self.names)}
                        for i, t in enumerate(self.thresholds)},
                "mean_pck": {f"{t:g}": _round(m) for t, m in zip(self.thresholds, self.mean_pck())},
                "hits": self.hits.tolist(), "visible": self.visible.tolist(), "missed": self.missed.tolist(),
                "absent": self.absent.tolist(), "false_positive": self.false_positive.tolist(),
                "error_sum": [round(float(e), 4) for e in self.error_sum],
                "mean_error": {n: _round(e) for n, e in zip([*self.names, "all"], self.mean_error())}}

    @classmethod
    def from_dict(cls, data: dict) -> "PCKCounts":
        return cls(list(data["names"]), tuple(data["thresholds"]), np.array(data["hits"], dtype=np.int64),
                   np.array(data["visible"], dtype=np.int64), np.array(data["missed"], dtype=np.int64),
                   np.array(data["absent"], dtype=np.int64), np.array(data["false_positive"], dtype=np.int64),
                   np.array(data["error_sum"], dtype=np.float64) if "error_sum" in data else None)


def _round(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def pck_counts(positions: np.ndarray, present: np.ndarray, truth: np.ndarray, sizes, names: list[str],
               thresholds: tuple[float, ...] = PCK_THRESHOLDS) -> PCKCounts:
    """The counts of N images: positions float [N, K, 2], present bool [N, K], truth float [N, K, 3],
    sizes [N] (each image's longer side, in the truth's pixels) or one number for all."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, len(names), 2)
    present = np.asarray(present, dtype=bool).reshape(positions.shape[:2])
    truth = np.asarray(truth, dtype=np.float64).reshape(positions.shape[0], len(names), 3)
    sizes = np.broadcast_to(np.asarray(sizes, dtype=np.float64), (positions.shape[0],))
    v = truth[..., 2]
    visible = v == 2  # NaN compares False: a name not annotated is in no count
    absent = v == 0
    distance = np.linalg.norm(positions - truth[..., :2], axis=-1)
    hits = np.stack([(visible & (distance <= t * sizes[:, None])).sum(0) for t in thresholds])
    error_sum = np.where(visible, distance, 0.0).sum(0)
    return PCKCounts(list(names), tuple(thresholds), hits.astype(np.int64), visible.sum(0).astype(np.int64),
                     (visible & ~present).sum(0).astype(np.int64), absent.sum(0).astype(np.int64),
                     (absent & present).sum(0).astype(np.int64), error_sum.astype(np.float64))

"""``PixelEnsemble``: the style interpreter as an estimator — fit on annotations, predict labels and JS.

    ensemble = PixelEnsemble(generator.feature_channels, classes, generator=generator.identity)
    ensemble.fit([(maps, mask), ...], generator.geometry)    # maps: [C_l, h_l, w_l] per layer, mask uint8 [H, W]
    out = ensemble.predict(synthesis.features)               # maps: [B, C_l, h_l, w_l] per layer
    out.labels, out.js, out.image_score, out.embedding
    out.keypoints.positions, .confidence, .spread     # with PixelEnsemble(..., keypoints=[names]) (``keypoints``)
    ensemble.save(path);  PixelEnsemble.load(path, expect_generator=..., expect_classes=...)

Hyperparameters live in the constructor (scikit-learn style); learned state in attributes ending in ``_``.
See ``network`` for the architecture, ``training`` for sampling and the stopping rule, ``inference`` for
the fast path and ``reference`` for the plain algorithm it is checked against.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from dgan_al.device import resolve_device
from dgan_al.errors import UserError
from dgan_al.files import atomic_write_bytes
from dgan_al.geometry import LabelGeometry
from dgan_al.interpreter.inference import (
    LayerGroup,
    interpret_full,
    interpret_grid,
    interpret_pixels,
    plan_layer_groups,
)
from dgan_al.interpreter.keypoints import KeypointPrediction, keypoint_uncertainty, pixel_set_keypoints
from dgan_al.interpreter.network import FoldedWeights, StackedMLP, paper_hidden_sizes
from dgan_al.interpreter.sampling import IGNORE
from dgan_al.interpreter.training import (
    EpochRecord,
    bootstrap_samples,
    build_pixel_pool,
    train_members,
)
from dgan_al.interpreter.uncertainty import image_score_sum, image_score_top_fraction
from dgan_al.progress import ProgressCallback, silent

FILE_FORMAT = "dgan-al pixel ensemble"
FILE_VERSION = 1
# the constructor's parameters, in order: get_params() and the saved "hyperparameters" use these names
PARAMS = ("feature_channels", "classes", "n_members", "hidden", "generator", "pixels_per_image", "class_balance",
          "batch_size", "lr", "max_epochs", "tol", "seed", "device",
          "keypoints", "sigma", "keypoint_pixels", "keypoint_weight")
KEYPOINT_PARAMS = ("keypoints", "sigma", "keypoint_pixels", "keypoint_weight")  # saved only with keypoints


@dataclass
class Prediction:
    """What ``PixelEnsemble.predict`` returns for a batch of B images of H x W label pixels (on the CPU)."""

    labels: torch.Tensor  # uint8 [B, H, W] majority vote (int64 if there are more than 255 classes)
    js: torch.Tensor  # float32 [B, H, W] per-pixel Jensen-Shannon divergence, nats
    image_score: torch.Tensor  # float64 [B] sum of js over the pixels (the paper's score, the default)
    image_score_top10: torch.Tensor  # float64 [B] mean of the top 10% js values (the reference code's)
    embedding: torch.Tensor  # float32 [B, M*h1] pooled first-layer activations (see ``PixelEnsemble``)
    probabilities: torch.Tensor | None = None  # float32 [B, K, H, W] mean over members, if asked for
    keypoints: KeypointPrediction | None = None  # peaks, confidence, spread: with keypoint heads only


@dataclass
class ImageScores:
    """What ``PixelEnsemble.score_images`` returns: per-image scores from a set of pixels."""

    image_score: torch.Tensor  # float64 [B] estimated sum of js over all label pixels
    image_score_top10: torch.Tensor  # float64 [B] mean of the top 10% js values of the scored pixels
    embedding: torch.Tensor  # float32 [B, M*h1] pooled first-layer activations over the scored pixels
    pixels: str  # the pixel set used: "full", "grid:S" or "subset:N"
    labels: torch.Tensor | None = None  # int64 [B, P] majority vote at those pixels (row-major; see scoring_pixels)
    keypoint_uncertainty: torch.Tensor | None = None  # float64 [B] (``keypoints.keypoint_uncertainty``), if asked


def parse_pixel_spec(pixels: str) -> tuple[str, int]:
    """The one reader of pixel-set names: "full" -> ("full", 0), "grid:S" -> ("grid", S), "subset:N" -> ("subset", N).

    Raises ValueError for anything else (S, N whole numbers >= 1).
    """
    if pixels == "full":
        return "full", 0
    match = re.fullmatch(r"(grid|subset):([0-9]+)", pixels) if isinstance(pixels, str) else None
    if match is None or int(match.group(2)) < 1:
        raise ValueError(f"pixels must be 'full', 'grid:S' or 'subset:N' with S, N >= 1, got {pixels!r}")
    return match.group(1), int(match.group(2))


def scoring_pixels(pixels: str, size: tuple[int, int], seed: int = 0) -> tuple[str, torch.Tensor, torch.Tensor]:
    """The label pixels an image score is computed from: ``(kind, ys, xs)``.

    "full": every pixel (ys, xs empty); "grid:S": the centre pixel of every S x S cell (ys: the grid's
    rows [ny], xs: its columns [nx]); "subset:N": N distinct pixels drawn once from ``seed``, the same
    for every image (ys, xs: int64 [N]).
    """
    height, width = size
    kind, number = parse_pixel_spec(pixels)
    empty = torch.zeros(0, dtype=torch.int64)
    if kind == "full":
        return "full", empty, empty
    if kind == "grid":
        return "grid", torch.arange(number // 2, height, number), torch.arange(number // 2, width, number)
    n = min(number, height * width)
    flat = torch.from_numpy(np.sort(np.random.default_rng([seed, 3]).choice(height * width, size=n, replace=False)))
    return "subset", flat // width, flat % width


class PixelEnsemble:
    """The style interpreter: ``n_members`` pixel MLPs trained on bootstrap samples of annotated pixels.

    Hyperparameters:
        feature_channels  C_l of each feature layer of the generator (its ``feature_channels``)
        classes           class names; class id = index; masks use ``IGNORE`` (255) for unlabelled
        n_members         ensemble size (paper: 10)
        hidden            (h1, h2); None = the paper's (128, 32) below 32 classes, else (256, 128)
        generator         identity of the generator the features come from (saved, checked on load)
        pixels_per_image  training pixels drawn per annotated image (every region at least once)
        class_balance     1 = every class an equal share of an image's draws, 0 = in proportion to area
        batch_size        pixels per member per Adam step (paper: 64; 256 trains ~1.45x faster on a CPU
                          with the same held-out accuracy per epoch, measured on a synthetic task)
        lr                Adam learning rate (paper: 1e-3)
        max_epochs, tol   stopping rule: stop at the first epoch that does not lower the members' mean
                          training loss by ``tol`` (relative) below the best so far, or after max_epochs
        seed              seeds sampling, initialisation and shuffling
        device            "cpu", "cuda", "auto" (CUDA when available)
        keypoints         keypoint names ([keypoints] names); [] = no heads, the ensemble as it always was.
                          Each member gets one heatmap output per name (``keypoints`` module: why extra
                          outputs rather than a separate ensemble); fit items then may carry a third
                          element, ``AnnotationRecord.keypoints`` (None: not annotated for keypoints)
        sigma             the Gaussian target's standard deviation, label pixels ([keypoints] sigma)
        keypoint_pixels   extra training pixels per placed keypoint, from the disc of radius 3 sigma
        keypoint_weight   weight of the heatmap L2 loss beside the class cross-entropy

    Resolved by ``check_params`` (in ``fit`` and ``load``): ``hidden_`` (the widths used), ``device_``.
    Learned attributes: ``net_`` (``StackedMLP``), ``geometry_`` (of the training features),
    ``history_`` (one ``EpochRecord`` per epoch), ``pool_bytes_`` (memory of the sampled training pixels).

    The embedding for coreset selection is the first hidden layer, ReLU then BatchNorm, averaged over
    the pixels, members concatenated ([M*h1]): members' hidden units are unrelated to each other, so
    they are kept side by side rather than averaged.
    """

    def __init__(
        self,
        feature_channels: Sequence[int],
        classes: Sequence[str],
        *,
        n_members: int = 10,
        hidden: tuple[int, int] | None = None,
        generator: str | None = None,
        pixels_per_image: int = 2048,
        class_balance: float = 1.0,
        batch_size: int = 256,
        lr: float = 1e-3,
        max_epochs: int = 8,
        tol: float = 0.02,
        seed: int = 0,
        device: str | torch.device = "cpu",
        keypoints: Sequence[str] = (),
        sigma: float = 2.0,
        keypoint_pixels: int = 32,
        keypoint_weight: float = 1.0,
    ):
        # scikit-learn's convention: the constructor only stores its arguments, under their own names;
        # check_params (called by fit and load) validates and resolves them (hidden_, device_).
        arguments = locals()
        for name in PARAMS:
            setattr(self, name, arguments[name])
        self.net_: StackedMLP | None = None
        self.geometry_: LabelGeometry | None = None
        self.history_: list[EpochRecord] = []
        self.pool_bytes_: int = 0
        self._folded: FoldedWeights | None = None
        self._plans: dict = {}

    def get_params(self) -> dict:
        """The constructor's arguments, by name (what ``save`` writes and ``load`` passes back)."""
        return {name: getattr(self, name) for name in PARAMS}

    # ------------------------------------------------------------------ validation

    def check_params(self) -> "PixelEnsemble":
        """Validate the parameters, normalise their types, resolve ``hidden_`` and ``device_``."""
        self.feature_channels = [int(c) for c in self.feature_channels]
        self.classes = [str(c) for c in self.classes]
        for name in ("n_members", "pixels_per_image", "batch_size", "max_epochs", "seed"):
            setattr(self, name, int(getattr(self, name)))
        for name in ("class_balance", "lr", "tol", "sigma", "keypoint_weight"):
            setattr(self, name, float(getattr(self, name)))
        self.keypoints = [str(k) for k in self.keypoints]
        self.keypoint_pixels = int(self.keypoint_pixels)
        if len(set(self.keypoints)) != len(self.keypoints) or any(not k for k in self.keypoints):
            raise ValueError(f"keypoints must be distinct non-empty names, got {self.keypoints}")
        if set(self.keypoints) & set(self.classes):
            raise ValueError(f"keypoint names may not be class names: {sorted(set(self.keypoints) & set(self.classes))}")
        if not self.sigma > 0 or self.keypoint_pixels < 1 or not self.keypoint_weight >= 0:
            raise ValueError(
                f"need sigma > 0, keypoint_pixels >= 1 and keypoint_weight >= 0, got {self.sigma}, "
                f"{self.keypoint_pixels}, {self.keypoint_weight}"
            )
        if not self.feature_channels or any(c <= 0 for c in self.feature_channels):
            raise ValueError(f"feature_channels must be a non-empty list of positive ints, got {self.feature_channels}")
        fewest = 1 if self.keypoints else 2  # keypoints alone: the background is the one class (the paper's cars)
        if len(self.classes) < fewest or len(set(self.classes)) != len(self.classes) or any(not c for c in self.classes):
            raise ValueError(f"classes must be at least {fewest} distinct non-empty names, got {self.classes}")
        if len(self.classes) > IGNORE:
            raise ValueError(
                f"at most {IGNORE} classes (mask value {IGNORE} means unlabelled), got {len(self.classes)}"
            )
        for name in ("n_members", "pixels_per_image", "max_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (BatchNorm needs 2 pixels), got {self.batch_size}")
        hidden = tuple(self.hidden) if self.hidden is not None else paper_hidden_sizes(len(self.classes))
        if len(hidden) != 2 or min(hidden) < 1:
            raise ValueError(f"hidden must be two positive widths (h1, h2), got {self.hidden}")
        if not 0.0 <= self.class_balance <= 1.0:
            raise ValueError(f"class_balance must be in [0, 1], got {self.class_balance}")
        self.hidden_ = tuple(int(h) for h in hidden)
        self.device_ = resolve_device(self.device)
        return self

    def _check_training_item(self, index: int, maps, mask, geometry: LabelGeometry) -> None:
        if len(maps) != len(self.feature_channels):
            raise ValueError(f"item {index}: expected {len(self.feature_channels)} feature maps, got {len(maps)}")
        for layer, (fmap, channels) in enumerate(zip(maps, self.feature_channels)):
            if fmap.ndim != 3 or fmap.shape[0] != channels:
                raise ValueError(
                    f"item {index}, layer {layer}: expected a [{channels}, h, w] map of one image, "
                    f"got shape {list(fmap.shape)}"
                )
        mask = np.asarray(mask)
        if mask.shape != tuple(geometry.size):
            raise ValueError(f"item {index}: expected a mask of shape {tuple(geometry.size)}, got {mask.shape}")
        bad = np.unique(mask[((mask < 0) | (mask >= len(self.classes))) & (mask != IGNORE)])
        if bad.size:
            raise ValueError(
                f"item {index}: mask has class ids {bad.tolist()}; expected 0..{len(self.classes) - 1} "
                f"or {IGNORE} (unlabelled)"
            )

    def _check_maps(self, feature_maps: Sequence[torch.Tensor]) -> int:
        if len(feature_maps) != len(self.feature_channels):
            raise ValueError(f"expected {len(self.feature_channels)} feature maps, got {len(feature_maps)}")
        batch = feature_maps[0].shape[0] if feature_maps[0].ndim == 4 else -1
        for layer, (fmap, channels) in enumerate(zip(feature_maps, self.feature_channels)):
            if fmap.ndim != 4 or fmap.shape[0] != batch or fmap.shape[1] != channels:
                raise ValueError(
                    f"layer {layer}: expected a [B, {channels}, h, w] batch (B the same for all layers), "
                    f"got shape {list(fmap.shape)}"
                )
        return batch

    def _require_fitted(self) -> None:
        if self.net_ is None:
            raise RuntimeError("this PixelEnsemble is not trained yet: call fit() or PixelEnsemble.load()")

    # ------------------------------------------------------------------ training

    def fit(
        self,
        items: Iterable[tuple[list[torch.Tensor], np.ndarray]],
        geometry: LabelGeometry,
        progress: ProgressCallback = silent,
    ) -> "PixelEnsemble":
        """Train on annotated images. Each item: (feature maps [C_l, h_l, w_l] per layer, mask uint8 [H, W]),
        or with keypoint heads (maps, mask, keypoints): ``{name: [x, y, v]}`` in label pixels (centres at
        integers), an array [K, 3] in ``self.keypoints`` order, or None (not annotated for keypoints:
        the image trains the classes only). A 2-tuple counts as None.

        Items are read once, one at a time (a generator reading a disk cache is fine; float16 maps are
        fine): only the sampled pixels' features are kept (``pool_bytes_``).
        """
        self.check_params()
        total = len(items) if hasattr(items, "__len__") else None
        pool = build_pixel_pool(
            items, geometry, self.pixels_per_image, self.class_balance, self.seed,
            check_item=lambda i, maps, mask: self._check_training_item(i, maps, mask, geometry),
            progress=progress, total=total,
            **({"keypoint_names": self.keypoints, "sigma": self.sigma, "keypoint_pixels": self.keypoint_pixels}
               if self.keypoints else {}),
        )
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        net = StackedMLP(self.n_members, sum(self.feature_channels), self.hidden_, self._n_outputs())
        net.reset_parameters(generator)
        net.to(self.device_)
        samples = bootstrap_samples(pool, self.n_members, self.batch_size, self.seed)
        self.history_ = train_members(
            net, pool, samples, self.batch_size, self.lr, self.max_epochs, self.tol, self.seed, progress,
            **({"keypoint_weight": self.keypoint_weight} if self.keypoints else {}),
        )
        self.net_ = net
        self.geometry_ = geometry
        self.pool_bytes_ = pool.nbytes
        self._folded, self._plans = None, {}
        return self

    def _n_outputs(self) -> int:
        """Outputs per member: the class logits, then one heatmap per keypoint."""
        return len(self.classes) + len(self.keypoints)

    # ------------------------------------------------------------------ inference

    def _groups(self, feature_maps, geometry: LabelGeometry) -> tuple[FoldedWeights, list[LayerGroup]]:
        if self._folded is None:
            self._folded = self.net_.fold(len(self.keypoints))
        sizes = tuple((int(m.shape[-2]), int(m.shape[-1])) for m in feature_maps)
        key = (sizes, geometry)
        if key not in self._plans:
            self._plans[key] = plan_layer_groups(self._folded, self.feature_channels, list(sizes), geometry)
        return self._folded, self._plans[key]

    def predict(
        self,
        feature_maps: Sequence[torch.Tensor],
        geometry: LabelGeometry | None = None,
        chunk_pixels: int | None = None,
        return_probabilities: bool = False,
        return_heatmaps: bool = False,
    ) -> Prediction:
        """Labels, per-pixel JS, image scores and embeddings of a batch, at full label resolution.

        feature_maps: [B, C_l, h_l, w_l] per layer, native resolution. geometry: defaults to the one
        used in ``fit``. ``chunk_pixels`` bounds the label pixels processed at once (memory: about
        chunk_pixels x M*h1 x 4 bytes, plus the low-resolution projections of the batch); by default 4096
        on a CPU and 2^19 on a GPU (``inference.default_chunk_pixels``).

        With keypoint heads, ``keypoints`` holds each name's peak, confidence and spread (computed in the
        same pass over the features; the averaged heatmaps too with ``return_heatmaps``).
        """
        self._require_fitted()
        self._check_maps(feature_maps)
        geometry = geometry or self.geometry_
        weights, groups = self._groups(feature_maps, geometry)
        result = interpret_full(list(feature_maps), weights, groups, geometry, chunk_pixels, return_probabilities,
                                keypoint_names=self.keypoints, return_heatmaps=return_heatmaps)
        keypoints = result.keypoints
        if keypoints is not None:
            keypoints = KeypointPrediction(
                keypoints.names, keypoints.positions.cpu(), keypoints.confidence.cpu(), keypoints.spread.cpu(),
                None if keypoints.heatmaps is None else keypoints.heatmaps.cpu(),
            )
        labels_dtype = torch.uint8 if len(self.classes) <= 255 else torch.int64
        return Prediction(
            labels=result.labels.to(labels_dtype).cpu(),
            js=result.js.cpu(),
            image_score=image_score_sum(result.js).cpu(),
            image_score_top10=image_score_top_fraction(result.js, 0.1).cpu(),
            embedding=self._embedding(result.hidden_mean).cpu(),
            probabilities=None if result.probabilities is None else result.probabilities.cpu(),
            keypoints=keypoints,
        )

    def score_images(
        self,
        feature_maps: Sequence[torch.Tensor],
        geometry: LabelGeometry | None = None,
        pixels: str = "full",
        chunk_pixels: int | None = None,
        seed: int = 0,
        keypoints: bool = False,
    ) -> ImageScores:
        """Image scores (and embeddings) only, from every pixel or a cheaper pixel set.

        pixels: "full" (same as ``predict``), "grid:S" (centre of every S x S cell) or "subset:N" (N
        pixels drawn once from ``seed``). For a pixel set the score is the mean JS over it times H*W, an
        estimate of the full sum. Use ``uncertainty.rank_agreement`` to check such a score against the
        full one on a pool before relying on it. ``keypoints`` (an ensemble with heads): also each image's
        keypoint uncertainty from the heads at the same pixels (``keypoints.pixel_set_keypoints``).
        """
        self._require_fitted()
        keypoints = keypoints and bool(self.keypoints)
        self._check_maps(feature_maps)
        geometry = geometry or self.geometry_
        weights, groups = self._groups(feature_maps, geometry)
        kind, ys, xs = scoring_pixels(pixels, geometry.size, seed)
        maps = list(feature_maps)
        if kind == "full":
            result = interpret_full(maps, weights, groups, geometry, chunk_pixels, keypoint_names=self.keypoints)
            score = image_score_sum(result.js)
            if keypoints:
                uncertainty = keypoint_uncertainty(result.keypoints.spread.cpu(), result.keypoints.confidence.cpu())
        else:
            interpret = interpret_grid if kind == "grid" else interpret_pixels
            result = interpret(maps, ys, xs, weights, groups, geometry, chunk_pixels, heat=keypoints)
            height, width = geometry.size
            js = result.js.reshape(result.js.shape[0], -1)
            score = js.to(torch.float64).mean(1) * (height * width)
            if keypoints:
                if kind == "grid":  # the grid's pixels, row-major
                    ys, xs = ys.repeat_interleave(len(xs)), xs.repeat(len(ys))
                uncertainty = keypoint_uncertainty(*pixel_set_keypoints(result.member_heat, ys, xs))
        return ImageScores(
            image_score=score.cpu(),
            image_score_top10=image_score_top_fraction(result.js, 0.1).cpu(),
            embedding=self._embedding(result.hidden_mean).cpu(),
            pixels=pixels,
            labels=result.labels.reshape(result.labels.shape[0], -1).cpu(),
            keypoint_uncertainty=uncertainty if keypoints else None,
        )

    def _embedding(self, hidden_mean: torch.Tensor) -> torch.Tensor:
        return hidden_mean * self._folded.bn1_scale + self._folded.bn1_shift  # BatchNorm of the pixel mean

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """Write the trained ensemble (atomically) to ``path``; read it back with ``PixelEnsemble.load``."""
        self._require_fitted()
        path = Path(path)
        geometry = None if self.geometry_ is None else {
            "canvas": list(self.geometry_.canvas), "crop": list(self.geometry_.crop)
        }
        params = self.get_params()
        del params["device"]  # where it runs is the loader's choice
        params["hidden"] = list(self.hidden_)
        if not self.keypoints:  # a parts-only file stays as it always was (older dgan-al reads it)
            for name in KEYPOINT_PARAMS:
                del params[name]
        else:
            params["keypoints"] = list(self.keypoints)
        payload = {
            "format": FILE_FORMAT,
            "format_version": FILE_VERSION,
            "classes": params.pop("classes"),
            "feature_channels": params.pop("feature_channels"),
            "generator": params.pop("generator"),
            "hyperparameters": params,
            "geometry": geometry,
            "history": [[r.epoch, r.loss, r.accuracy] for r in self.history_],
            "pool_bytes": self.pool_bytes_,
            "state": {k: v.detach().cpu() for k, v in self.net_.state_dict().items()},
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(
        cls,
        path: str | Path,
        expect_generator: str | None = None,
        expect_classes: Sequence[str] | None = None,
        device: str | torch.device = "cpu",
    ) -> "PixelEnsemble":
        """Read an ensemble saved by ``save`` (``torch.load(weights_only=True)``: no code is executed).

        Raises ``UserError`` naming the file if it is missing, not an interpreter file, or was trained
        for another generator (``expect_generator``) or another class list (``expect_classes``).
        """
        path = Path(path)
        if not path.is_file():
            raise UserError("interpreter weights not found", path=path, fix="train one first with `dgan-al next-round`")
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
            raise UserError("not a dgan-al interpreter file (not a torch archive)", path=path,
                            fix="point to a file written by dgan-al")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
            raise UserError(
                f"not a readable dgan-al interpreter file ({type(err).__name__})", path=path,
                fix="delete it and train again",
            ) from None
        required = {"classes", "feature_channels", "generator", "hyperparameters", "geometry", "history", "state"}
        if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT or not required <= payload.keys():
            raise UserError("not a dgan-al interpreter file", path=path, fix="point to a file written by dgan-al")
        if payload.get("format_version") != FILE_VERSION:
            raise UserError(
                f"interpreter file version {payload.get('format_version')} is not supported "
                f"(this dgan-al reads version {FILE_VERSION})", path=path, fix="train the interpreter again",
            )
        if expect_generator is not None and payload["generator"] != expect_generator:
            raise UserError(
                f"the interpreter was trained on features of generator {payload['generator']!r}, "
                f"not {expect_generator!r}", path=path, fix="train a new interpreter for this generator",
            )
        if expect_classes is not None and list(payload["classes"]) != list(expect_classes):
            difference = _class_difference(payload["classes"], expect_classes)
            raise UserError(
                f"the interpreter's classes differ from the expected ones: {difference}",
                path=path, fix="train a new interpreter for this class list",
            )
        hp = dict(payload["hyperparameters"], hidden=tuple(payload["hyperparameters"]["hidden"]))
        unknown = set(hp) - set(PARAMS)
        if unknown:
            raise UserError(f"the interpreter file has unknown settings {sorted(unknown)}", path=path,
                            fix="train the interpreter again with this dgan-al")
        ensemble = cls(payload["feature_channels"], payload["classes"], generator=payload["generator"],
                       device=device, **hp).check_params()
        net = StackedMLP(ensemble.n_members, sum(ensemble.feature_channels), ensemble.hidden_, ensemble._n_outputs())
        net.load_state_dict(payload["state"])
        ensemble.net_ = net.to(ensemble.device_).eval()
        geometry = payload["geometry"]
        if geometry is not None:
            ensemble.geometry_ = LabelGeometry(canvas=tuple(geometry["canvas"]), crop=tuple(geometry["crop"]))
        ensemble.history_ = [EpochRecord(int(e), float(l), float(a)) for e, l, a in payload["history"]]
        ensemble.pool_bytes_ = int(payload["pool_bytes"])
        return ensemble


def _class_difference(found: Sequence[str], expected: Sequence[str]) -> str:
    found, expected = list(found), list(expected)
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"unexpected {extra}")
    if not parts:
        parts.append(f"same names in another order: {found} instead of {expected}")
    return "; ".join(parts)

"""``dgan-al.toml``: every setting of the loop, read strictly, written with comments.

Unknown sections or keys (a typo) and values of the wrong type are errors that name the file, the key
and the closest known key. Command-line flags override these settings for one run.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

from dgan_al.errors import UserError, quote

CONFIG_NAME = "dgan-al.toml"


@dataclass
class GeneratorSettings:
    spec: str = "toy-faces"  # toy-faces, or a checkpoint path (relative to the workspace)
    truncation_psi: float = 1.0  # truncation towards the mean w (1 = none)
    label_resolution: int = 0  # label at this resolution (0 = the generator's own)
    crop: list[int] = field(default_factory=list)  # [top, left, height, width] of the labelled image, or []


@dataclass
class PoolSettings:
    size: int = 10_000  # candidate latents scored each round
    seed: int = 0  # latent i of the pool comes from (seed, i)


@dataclass
class PhotoSettings:
    folder: str = ""  # the pool: every image file in this folder, subfolders included (relative to the workspace, or absolute); "" = a pool of generated latents
    size: int = 0  # the UNet reads each photo resized (shorter side) and centre-cropped to size x size; 0 = its image_size
    label_size: int = 0  # labels, and the image a person annotates, at label_size x label_size (features upsampled to it); 0 = size
    steps: list[int] = field(default_factory=lambda: [50, 150, 250])  # diffusion steps the features are read at (ddpm-segmentation's)
    blocks: list[int] = field(default_factory=lambda: [5, 6, 7, 8, 12])  # the UNet's output_blocks read at each step
    noise_seed: int = 0  # seeds the one noise draw every photo shares (ddpm-segmentation's share_noise)


@dataclass
class SelectionSettings:
    strategy: str = "al"  # al (the paper's), random, random-expert, uncertainty, coreset, rare, typical or typical-al (dgan_al/strategies.py)
    skip_top: float = 0.10  # drop this most-uncertain fraction (likely GAN failures)
    band: float = 0.10  # then keep this fraction just below it
    centers: int = 12  # k-center greedy picks this many images from the band
    annotate: int = 6  # the annotator annotates the most realistic this many of them
    embedding: str = "activations"  # al's coreset and typical's clusters: "activations" (pooled interpreter features) or "w" (the mapped latent)
    score: str = "sum"  # image score: "sum" of pixel JS (paper) or "top10" (mean of the top 10% pixels)
    score_pixels: str = "auto"  # pixels for the image score: "auto" (full on a GPU, the measured grid on a CPU), "full", "grid:N", "subset:N"
    rare_power: float = 1.0  # rare: class weights are (1 / predicted pixel share) ** rare_power
    switch_at: int = 10  # typical-al: typical while fewer images than this are annotated, then al


@dataclass
class EnsembleSettings:
    members: int = 10  # MLPs in the interpreter ensemble
    seed: int = 0
    epochs: int = 8  # at most this many passes over the pixel sample (stops earlier once the loss plateaus)
    pixels_per_image: int = 2048  # pixels sampled per annotated image (every labelled region at least once)


@dataclass
class RunSettings:
    device: str = "auto"  # auto (CUDA when present), cpu, cuda
    batch: int = 16  # images per generator batch while scoring
    chunk: int = 512  # pool latents per resumable chunk
    prefill: bool = True  # pre-fill exported LabelMe files with the predicted polygons
    prefill_min_annotations: int = 1  # pre-fill only from an interpreter trained on at least this many images


@dataclass
class KeypointSettings:
    names: list[str] = field(default_factory=list)  # LabelMe point labels, e.g. ["left_eye", "nose_tip"] (left/right: the subject's, as in COCO); [] = no keypoints
    sigma: float = 2.0  # standard deviation of the Gaussian heatmap target around each keypoint, in label pixels
    skeleton: list[list[str]] = field(default_factory=list)  # pairs of names joined in pictures and in COCO's skeleton, e.g. [["left_eye", "nose_tip"]]
    prefill_confidence: float = 0.2  # a predicted point counts as present (pre-fill, build-dataset v = 2) at this heatmap peak or above (0..1)
    score: bool = False  # true: selection ranks by the mean of the JS score's rank and the keypoints' uncertainty rank (confidence x spread of the members' peaks)


# a keypoint name: a letter, then letters, digits or underscores (left_eye, nose_tip)
KEYPOINT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
RESERVED_LABELS = ("_background_", "__ignore__")  # LabelMe's own labels (labelme.format)


@dataclass
class WorkspaceConfig:
    classes: list[str] = field(default_factory=list)  # class 0 is the background
    generator: GeneratorSettings = field(default_factory=GeneratorSettings)
    pool: PoolSettings = field(default_factory=PoolSettings)
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    ensemble: EnsembleSettings = field(default_factory=EnsembleSettings)
    run: RunSettings = field(default_factory=RunSettings)
    keypoints: KeypointSettings = field(default_factory=KeypointSettings)
    photos: PhotoSettings = field(default_factory=PhotoSettings)

    @property
    def photo_pool(self) -> bool:
        """Whether the pool is a folder of photos (``[photos] folder``) rather than generated latents."""
        return bool(self.photos.folder)

    def validate(self, path: Path | None = None) -> "WorkspaceConfig":
        problems = []
        if not self.classes or (len(self.classes) < 2 and not self.keypoints.names):
            problems.append("classes: need the background and at least one part class (or [keypoints] names, for a "
                            "keypoint-only workspace)")
        if len(set(self.classes)) != len(self.classes):
            problems.append("classes: names must be unique")
        for name in self.classes:
            if not name or name.strip() != name or name.startswith("_"):
                problems.append(f"classes: {quote(name)} is not a valid class name (no leading '_' or spaces)")
        s = self.selection
        if not 0 <= s.skip_top < 1:
            problems.append(f"selection.skip_top = {s.skip_top}: must be in [0, 1)")
        if not 0 < s.band <= 1 or s.skip_top + s.band > 1:
            problems.append(f"selection.band = {s.band}: must be in (0, 1 - skip_top]")
        if s.centers < 1 or not 1 <= s.annotate <= s.centers:
            problems.append("selection: need centers >= 1 and 1 <= annotate <= centers")
        from dgan_al.strategies import STRATEGIES

        if s.strategy not in STRATEGIES:
            problems.append(f"selection.strategy = {quote(s.strategy)}: use one of {', '.join(STRATEGIES)}")
        if s.switch_at < 1:
            problems.append(f"selection.switch_at = {s.switch_at}: must be >= 1")
        if s.rare_power < 0:
            problems.append(f"selection.rare_power = {s.rare_power}: must be >= 0")
        if s.embedding not in ("activations", "w"):
            problems.append(f"selection.embedding = {quote(s.embedding)}: use \"activations\" or \"w\"")
        if s.score not in ("sum", "top10"):
            problems.append(f"selection.score = {quote(s.score)}: use \"sum\" or \"top10\"")
        if not (s.score_pixels in ("auto", "full") or _is_pixel_spec(s.score_pixels)):
            problems.append(f"selection.score_pixels = {quote(s.score_pixels)}: use \"auto\", \"full\", \"grid:N\" or \"subset:N\"")
        if self.pool.size < 1 or self.pool.seed < 0:
            problems.append("pool: size must be >= 1 and seed >= 0")
        if self.ensemble.members < 1 or self.ensemble.epochs < 1 or self.ensemble.pixels_per_image < 16:
            problems.append("ensemble: need members >= 1, epochs >= 1, pixels_per_image >= 16")
        if self.run.batch < 1 or self.run.chunk < 1:
            problems.append("run: batch and chunk must be >= 1")
        if self.run.prefill_min_annotations < 1:
            problems.append(f"run.prefill_min_annotations = {self.run.prefill_min_annotations}: must be >= 1")
        if self.generator.crop and len(self.generator.crop) != 4:
            problems.append("generator.crop: [top, left, height, width] or []")
        problems += _keypoint_problems(self.keypoints, self.classes)
        if self.photo_pool:
            problems += _photo_problems(self.photos, self.selection)
        if problems:
            raise UserError("; ".join(problems), path=path, fix=f"edit {CONFIG_NAME}")
        return self


def _keypoint_problems(k: KeypointSettings, classes: list[str]) -> list[str]:
    """What is wrong with the ``[keypoints]`` settings (names, skeleton, numbers)."""
    problems = []
    taken = {c.lower(): c for c in classes} | {r.lower(): r for r in RESERVED_LABELS}
    seen: set[str] = set()
    for name in k.names:
        if not KEYPOINT_NAME.fullmatch(name):
            problems.append(f"keypoints.names: {quote(name)} is not a keypoint name (a letter, then letters, digits "
                            "or _, like left_eye or nose_tip)")
        elif name.lower() in taken:
            problems.append(f"keypoints.names: {quote(name)} is already the label {quote(taken[name.lower()])}; a "
                            "keypoint needs a name of its own (not a class, _background_ or __ignore__)")
        elif name in seen:
            problems.append(f"keypoints.names: {quote(name)} is listed twice")
        seen.add(name)
    pairs: set[frozenset[str]] = set()
    for pair in k.skeleton:
        unknown = [n for n in pair if n not in seen]
        if len(pair) != 2:
            problems.append(f"keypoints.skeleton: {quote(pair)} is not a pair [a, b] of keypoint names")
        elif unknown:
            problems.append(f"keypoints.skeleton: {quote(unknown[0])} in {quote(pair)} is not in keypoints.names")
        elif pair[0] == pair[1]:
            problems.append(f"keypoints.skeleton: {quote(pair)} joins a keypoint to itself")
        elif frozenset(pair) in pairs:
            problems.append(f"keypoints.skeleton: {quote(pair)} is listed twice")
        pairs.add(frozenset(pair))
    if not k.sigma > 0:
        problems.append(f"keypoints.sigma = {k.sigma}: must be > 0 (label pixels)")
    if not 0 <= k.prefill_confidence <= 1:
        problems.append(f"keypoints.prefill_confidence = {k.prefill_confidence}: must be in [0, 1]")
    return problems


def _photo_problems(p: PhotoSettings, s: SelectionSettings) -> list[str]:
    """What is wrong with the ``[photos]`` settings of a photo pool."""
    problems = []
    if p.size < 0 or p.label_size < 0:
        problems.append(f"photos.size = {p.size}, label_size = {p.label_size}: must be >= 0 (0: the default)")
    if not p.steps or len(set(p.steps)) != len(p.steps) or min(p.steps) < 0:
        problems.append(f"photos.steps = {p.steps}: distinct diffusion steps >= 0, e.g. [50, 150, 250]")
    if not p.blocks or len(set(p.blocks)) != len(p.blocks) or min(p.blocks) < 0:
        problems.append(f"photos.blocks = {p.blocks}: distinct output_blocks indices >= 0, e.g. [5, 6, 7, 8, 12]")
    if p.noise_seed < 0:
        problems.append(f"photos.noise_seed = {p.noise_seed}: must be >= 0")
    if s.embedding == "w":
        problems.append("selection.embedding = \"w\": a photo has no latent w; use \"activations\"")
    return problems


def _is_pixel_spec(text: str) -> bool:
    from dgan_al.interpreter.ensemble import parse_pixel_spec

    try:
        parse_pixel_spec(text)
    except ValueError:
        return False
    return True


def _check_value(value: Any, expected: Any, where: str, path: Path) -> Any:
    origin = getattr(expected, "__origin__", None)
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif expected is str:
        ok = isinstance(value, str)
    elif origin is list:
        ok = _is_list_of(value, expected)
    else:  # pragma: no cover - every field type is one of the above
        raise TypeError(expected)
    if not ok:
        name = getattr(expected, "__name__", str(expected))
        raise UserError(f"{where} = {quote(value)} should be of type {name}", path=path,
                        fix=f"edit {CONFIG_NAME}")
    return value


def _is_list_of(value: Any, expected: Any) -> bool:
    """Whether ``value`` is a list of ``expected``'s item type (``list[str]``, ``list[list[str]]``, ...)."""
    (item,) = expected.__args__
    if getattr(item, "__origin__", None) is list:
        return isinstance(value, list) and all(_is_list_of(v, item) for v in value)
    return isinstance(value, list) and all(isinstance(v, item) and not isinstance(v, bool) for v in value)


def _from_table(cls, table: dict, where: str, path: Path):
    hints = get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in table.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1) if len(key) <= 100 else []  # keys are short
            hint = f"did you mean {(where + '.' if where else '') + close[0]!r}?" if close else \
                f"known keys: {', '.join(known)}"
            raise UserError(f"unknown setting {quote((where + '.' if where else '') + key)} ({hint})", path=path,
                            fix=f"fix the key in {CONFIG_NAME}")
        expected = hints[key]
        if is_dataclass(expected):
            if not isinstance(value, dict):
                raise UserError(f"[{key}] should be a table", path=path, fix=f"edit {CONFIG_NAME}")
            kwargs[key] = _from_table(expected, value, key, path)
        else:
            kwargs[key] = _check_value(value, expected, (where + "." if where else "") + key, path)
    return cls(**kwargs)


def load_config(path: Path) -> WorkspaceConfig:
    """Read and validate a workspace's ``dgan-al.toml``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("no workspace here (dgan-al.toml not found)", path=path,
                        fix="run the command inside a workspace, or create one with `dgan-al init DIR`") from None
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", path=path, fix=f"save {CONFIG_NAME} as UTF-8") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"not valid TOML: {err}", path=path, fix=f"fix the syntax of {CONFIG_NAME}") from None
    return _from_table(WorkspaceConfig, table, "", path).validate(path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(type(value))


def _comments(cls) -> dict[str, str]:
    """The trailing ``# comment`` of each field in this module's source, for the written file."""
    import inspect

    out = {}
    for line in inspect.getsource(cls).splitlines():
        head, sep, comment = line.partition("#")
        name = head.strip().split(":")[0]
        if sep and name.isidentifier():
            out[name] = comment.strip()
    return out


SECTION_HELP = {
    "generator": "Where images and features come from.",
    "pool": "The candidate latents scored each round (latent i from (seed, i): growing the pool never reshuffles it).",
    "selection": "What to annotate next (DatasetGAN §5.1): drop the top skip_top most uncertain, k-center on the band below.",
    "ensemble": "The style interpreter: an ensemble of per-pixel MLPs on the generator's features.",
    "run": "How commands run.",
    "keypoints": "Keypoints (DatasetGAN §3.2): LabelMe point shapes labelled with these names, beside the part classes.",
    "photos": "A pool of photos read by a diffusion UNet (ddpm-segmentation's features) instead of generated latents.",
}


def render_config(config: WorkspaceConfig) -> str:
    """The TOML text of a config, every setting with its comment."""
    lines = ["# dgan-al workspace settings. Command-line flags override them for one run.", ""]
    lines.append("# The part classes; class 0 is the background (LabelMe's _background_).")
    lines.append(f"classes = {_toml_value(config.classes)}")
    for section in ("generator", "pool", "selection", "ensemble", "run", "keypoints", "photos"):
        if section == "photos" and not config.photo_pool:
            continue  # a latent pool's file stays as it always was
        obj = getattr(config, section)
        comments = _comments(type(obj))
        lines += ["", f"# {SECTION_HELP[section]}", f"[{section}]"]
        for f in fields(obj):
            value = _toml_value(getattr(obj, f.name))
            comment = comments.get(f.name)
            lines.append(f"{f.name} = {value}" + (f"  # {comment}" if comment else ""))
    return "\n".join(lines) + "\n"

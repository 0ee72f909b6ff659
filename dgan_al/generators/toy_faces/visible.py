"""The visible truth of toy-faces: the renderer's mask without the parts the GAN image does not show.

The distilled generator draws some thresholded parts rarely or never (glasses, earrings, the open
mouth), yet the renderer's mask marks them. An annotator labels what it sees, so the oracle labels the
visible truth. For each thresholded part a scene has (``PARTS``: glasses, hat, beard, earrings, the open
mouth with its teeth) the same scene is rendered once more without that part (every other parameter
unchanged). The part's region is where those two renders differ by more than ``PART_CONTRAST`` (sum
over RGB of the absolute difference, 0..765). G draws the part when its pixels in that region are
closer, in mean absolute difference, to the render with the part than to the render without it
(``part_drawn``). The visible mask is the mask of the scene with every part G does not draw removed, so
it equals the renderer's mask wherever G draws all its parts, and differs only inside the regions of
the parts it does not draw. A part with an empty region (earrings under long hair) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from dgan_al.generators.toy_faces.classes import CLASSES
from dgan_al.generators.toy_faces.render import render
from dgan_al.generators.toy_faces.scene import Scene, params_from_latent

# part -> the Scene fields that remove it (the open mouth closes: its teeth and dark inside go)
PARTS: dict[str, dict] = {"glasses": {"glasses": None}, "hat": {"hat": None}, "beard": {"beard": None},
                          "earring": {"earrings": None}, "teeth": {"mouth_open": 0.0}}
PART_CONTRAST = 30  # grey levels summed over RGB: render pixels that change more belong to the part
TRUTHS = ("visible", "renderer")


def parts_of(scene: Scene) -> list[str]:
    """The thresholded parts present in a scene, in ``PARTS`` order."""
    return [p for p, fields in PARTS.items() if any(getattr(scene, k) != v for k, v in fields.items())]


def without(scene: Scene, parts: list[str]) -> Scene:
    """The same scene with ``parts`` removed."""
    changes: dict = {}
    for part in parts:
        changes.update(PARTS[part])
    return replace(scene, **changes)


@dataclass
class PartTest:
    """Whether the GAN image shows one part: mean |GAN - render| in the part's region, with and without it."""

    drawn: bool
    pixels: int  # size of the part's region (0: the part changes nothing visible)
    d_with: float = float("nan")
    d_without: float = float("nan")

    @property
    def closeness(self) -> float:
        """0 = the GAN pixels look as without the part, 1 = as with it."""
        return self.d_without / (self.d_with + self.d_without) if self.pixels else float("nan")


def part_drawn(fake: np.ndarray, rgb_with: np.ndarray, rgb_without: np.ndarray) -> PartTest:
    """The drawn test on uint8 [H, W, 3] images: G(z), the scene's render, the render without the part."""
    fake, a, b = (np.asarray(x, dtype=np.float32) for x in (fake, rgb_with, rgb_without))
    region = np.abs(a - b).sum(-1) > PART_CONTRAST
    if not region.any():
        return PartTest(drawn=True, pixels=0)
    d_with, d_without = float(np.abs(fake - a)[region].mean()), float(np.abs(fake - b)[region].mean())
    return PartTest(drawn=d_with < d_without, pixels=int(region.sum()), d_with=d_with, d_without=d_without)


def part_tests(scene: Scene, fake: np.ndarray, rgb: np.ndarray | None = None) -> dict[str, PartTest]:
    """The drawn test of each thresholded part of ``scene`` against G's image ``fake`` (``rgb``: its render)."""
    parts = parts_of(scene)
    if not parts:
        return {}
    rgb = render(scene)[0] if rgb is None else rgb
    return {p: part_drawn(fake, rgb, render(without(scene, [p]))[0]) for p in parts}


def visible_scene(scene: Scene, fake: np.ndarray) -> Scene:
    """The scene as G's image ``fake`` shows it: without the parts G does not draw."""
    hidden = [p for p, t in part_tests(scene, fake).items() if not t.drawn]
    return without(scene, hidden) if hidden else scene


@dataclass
class VisibleTruth:
    masks: np.ndarray  # uint8 [B, H, W]: the visible truth
    renderer: np.ndarray  # uint8 [B, H, W]: the renderer's truth
    tests: list[dict[str, PartTest]] = field(default_factory=list)  # per image: part -> its test

    def hidden(self, i: int) -> list[str]:
        return [p for p, t in self.tests[i].items() if not t.drawn]


def visible_truth(latents: np.ndarray, images: np.ndarray) -> VisibleTruth:
    """Both truths of toy-faces scenes: latents float [B, 32], their GAN images uint8 [B, H, W, 3]."""
    latents, images = np.asarray(latents, dtype=np.float64), np.asarray(images)
    if len(latents) != len(images):
        raise ValueError(f"{len(latents)} latents but {len(images)} images")
    renderer, masks, tests = [], [], []
    for z, fake in zip(latents, images):
        scene = params_from_latent(z)
        rgb, mask = render(scene)
        mine = part_tests(scene, fake, rgb)
        hidden = [p for p, t in mine.items() if not t.drawn]
        renderer.append(mask)
        masks.append(render(without(scene, hidden))[1] if hidden else mask)
        tests.append(mine)
    return VisibleTruth(np.stack(masks), np.stack(renderer), tests)


def presence_rates(generator, n: int = 1000, seed: int = 6_000, batch: int = 50) -> dict[str, dict[str, float]]:
    """Per class, the share of ``n`` latents (stream ``seed``) whose mask has it, under both truths."""
    from dgan_al.generators.protocol import sample_latents

    z = sample_latents(generator.z_dim, n, seed=seed)
    present = {t: np.zeros(len(CLASSES)) for t in TRUTHS}
    for chunk in z.split(batch):
        truth = visible_truth(chunk.numpy(), generator.synthesize(chunk).images.numpy())
        for name, masks in (("visible", truth.masks), ("renderer", truth.renderer)):
            for m in masks:
                present[name][np.unique(m)] += 1
    return {c: {t: float(present[t][i] / n) for t in TRUTHS} for i, c in enumerate(CLASSES)}

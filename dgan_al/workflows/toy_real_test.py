"""``dgan-al toy real-test``: a "real" annotated test set for toy-faces, made by the renderer itself.

The paper tests the segmentation network trained on generated data on real photographs. In the toy
world the renderer plays reality: its images are crisp (the distilled GAN's are not), so a network
trained on GAN images meets a real domain gap. Each image comes with a LabelMe file whose polygons are
traced from the exact mask (as the oracle annotator draws them), ticked ``done``, so the test set is
read exactly like one people annotated. Latents come from their own stream (``REAL_TEST_SEED``), apart
from pools, datasets and the distillation's training scenes.

With ``keypoints`` each file also has the renderer's exact keypoints (``toy_faces.keypoints``) as ``point``
shapes (``occluded`` flag on those a rare part hides), the image flag ``keypoints`` ticked and the names in
labels.txt. Off by default: a workspace without ``[keypoints] names`` reads a point as a disc of a class,
and keypoint names are no classes, so its ``evaluate --test`` would refuse such files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dgan_al.errors import UserError
from dgan_al.generators.protocol import sample_latents
from dgan_al.progress import ProgressCallback, silent

REAL_TEST_SEED = 3_000


@dataclass
class RealTestResult:
    folder: Path
    written: int
    class_presence: dict[str, float]  # share of images showing each class


def make_real_test(folder: Path, n: int = 100, seed: int = REAL_TEST_SEED,
                   progress: ProgressCallback = silent, keypoints: bool = False) -> RealTestResult:
    from dgan_al.generators.toy_faces.classes import CLASSES
    from dgan_al.generators.toy_faces.keypoints import KEYPOINTS, latent_keypoints
    from dgan_al.generators.toy_faces.scene import Z_DIM
    from dgan_al.generators.toy_faces.render import render_latents
    from dgan_al.labelme import mask_to_polygons, write_labelme, write_labels_file
    from dgan_al.labelme.format import KEYPOINTS_FLAG, OCCLUDED, OCCLUDED_FLAG

    folder = Path(folder)
    if n < 1:
        raise UserError(f"must be at least 1, got {n}", setting="n", fix="e.g. 100")
    if folder.is_dir() and any(p.suffix == ".json" for p in folder.iterdir()):
        raise UserError("the folder already holds LabelMe files", path=folder,
                        fix="choose a new folder (nothing there was touched)")
    folder.mkdir(parents=True, exist_ok=True)
    z = sample_latents(Z_DIM, n, seed=seed)
    presence = np.zeros(len(CLASSES))
    for start in range(0, n, 16):
        images, masks = render_latents(z[start:start + 16].numpy())
        points = latent_keypoints(z[start:start + 16].numpy(), "renderer") if keypoints else None
        for j, (image, mask) in enumerate(zip(images, masks)):
            index = start + j
            shapes = mask_to_polygons(mask, list(CLASSES))
            flags = {"done": True, "unrealistic": False}
            if keypoints:
                shapes += [{"label": name, "points": [[float(x), float(y)]], "group_id": None, "description": "",
                            "shape_type": "point", "flags": {OCCLUDED_FLAG: bool(v == OCCLUDED)}, "mask": None}
                           for name, (x, y, v) in zip(KEYPOINTS, points[j]) if v > 0]
                flags[KEYPOINTS_FLAG] = True
            write_labelme(folder / f"real_{index:04d}.json", np.ascontiguousarray(image), shapes, flags=flags,
                          extra={"dgan_al_real_test": {"seed": seed, "index": index}})
            presence[np.unique(mask)] += 1
        progress("rendering real test images", min(start + 16, n), n)
    write_labels_file(folder / "labels.txt", list(CLASSES), list(KEYPOINTS) if keypoints else ())
    return RealTestResult(folder, n, {c: float(p / n) for c, p in zip(CLASSES, presence)})

"""The built-in toy-faces world: a procedural renderer of cartoon heads with exact part masks, and a
small StyleGAN2 distilled from it whose weights ship inside the package.

- ``render_latents(z)`` / ``oracle_mask(z)``: the renderer's image and exact mask for any latent.
- ``load_toy_faces()``: the distilled generator (the ``Generator`` protocol + ``oracle_mask``,
  ``oracle_keypoints``).
- ``KEYPOINTS``: the keypoint names (``keypoints.py``: exact points from the scene geometry).
"""

from dgan_al.generators.toy_faces.classes import CLASSES, PALETTE, RARE_CLASSES
from dgan_al.generators.toy_faces.keypoints import KEYPOINTS
from dgan_al.generators.toy_faces.generator import ToyFacesGenerator, load_toy_faces
from dgan_al.generators.toy_faces.render import oracle_mask, render_latents
from dgan_al.generators.toy_faces.scene import Z_DIM, normalize_latent, params_from_latent, with_coordinates

__all__ = ["CLASSES", "KEYPOINTS", "PALETTE", "RARE_CLASSES", "Z_DIM", "ToyFacesGenerator", "load_toy_faces",
           "oracle_mask", "normalize_latent", "params_from_latent", "render_latents", "with_coordinates"]

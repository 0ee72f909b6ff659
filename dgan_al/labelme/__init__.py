"""LabelMe as the annotation client: strict reading, exact rasterisation, export, pre-fill, launch.

- ``read_labelme(json_path, classes) -> Annotation``: validate a file, every problem in one
  ``LabelMeError``.
- ``embedded_image_problem(annotation, image_path)``: the pixels LabelMe showed (``imageData``) are
  not the image file's; ``closest_label``: the did-you-mean for an unknown label, only when close.
- ``rasterize(shapes, height, width, classes) -> uint8 [H, W]``: class ids pixel for pixel as LabelMe's
  ``shapes_to_label`` (``IGNORE`` = 255 for ``__ignore__``).
- ``write_labelme(json_path, image, shapes, flags, extra)``, ``write_labels_file(path, classes)``:
  export for annotation (PNG without EXIF, ``imageData: null``, flags ``done`` / ``unrealistic``).
- ``mask_to_polygons(mask, classes) -> list[shape dict]``: pre-fill polygons; ``count_vertices``.
- ``find_labelme``, ``labelme_version``, ``labelme_command``, ``launch_labelme``: start the real LabelMe.
"""

from dgan_al.labelme.format import (
    BACKGROUND_LABEL,
    DONE_FLAG,
    EXPORT_FLAGS,
    IGNORE,
    IGNORE_LABEL,
    SHAPE_TYPES,
    UNREALISTIC_FLAG,
    Annotation,
    LabelMeError,
    Shape,
    decode_mask,
    encode_mask,
    label_values,
)
from dgan_al.labelme.launch import (
    INSTALL_HINT,
    LabelMeInstall,
    LabelMeNotInstalled,
    find_labelme,
    labelme_command,
    labelme_version,
    launch_labelme,
)
from dgan_al.labelme.polygons import count_vertices, mask_to_polygons
from dgan_al.labelme.rasterize import rasterize, shape_mask
from dgan_al.labelme.read import closest_label, embedded_image_problem, read_image, read_labelme
from dgan_al.labelme.write import shape_to_json, write_labelme, write_labels_file

__all__ = [
    "BACKGROUND_LABEL",
    "DONE_FLAG",
    "EXPORT_FLAGS",
    "IGNORE",
    "IGNORE_LABEL",
    "INSTALL_HINT",
    "SHAPE_TYPES",
    "UNREALISTIC_FLAG",
    "Annotation",
    "LabelMeError",
    "LabelMeInstall",
    "LabelMeNotInstalled",
    "Shape",
    "closest_label",
    "count_vertices",
    "decode_mask",
    "embedded_image_problem",
    "encode_mask",
    "find_labelme",
    "label_values",
    "labelme_command",
    "labelme_version",
    "launch_labelme",
    "mask_to_polygons",
    "rasterize",
    "read_image",
    "read_labelme",
    "shape_mask",
    "shape_to_json",
    "write_labelme",
    "write_labels_file",
]

"""The downstream segmentation network and its trainer (the paper's evaluation on real images).

``train_segmenter`` trains ``build_segmenter(settings.model, K)`` on generated (image, mask) pairs and
keeps a confusion matrix per epoch and per real test image, so that the 5-fold checkpoint selection of
``dgan_al.metrics.select_and_score`` is arithmetic afterwards.
"""

from dgan_al.segmenter.network import SEGMENTER_NAMES, CompactUNet, CompactUNetConfig, Segmenter, build_segmenter
from dgan_al.segmenter.train import SegmenterRun, SegmenterSettings, predict_segmenter, train_segmenter

__all__ = [
    "SEGMENTER_NAMES", "CompactUNet", "CompactUNetConfig", "Segmenter", "build_segmenter",
    "SegmenterRun", "SegmenterSettings", "predict_segmenter", "train_segmenter",
]

"""The style interpreter: an ensemble of pixel MLPs over generator features, with JS uncertainty.

Public API:
    PixelEnsemble, Prediction, ImageScores     the estimator and what it returns (``ensemble``)
    KeypointPrediction                         keypoint peaks, confidence, spread of the heads (``keypoints``)
    gather_features                            features at label pixels, exact bilinear rule (``bilinear``)
    sample_training_pixels, IGNORE             which pixels are trained on (``sampling``)
    js_divergence, majority_vote, image_score_sum, image_score_top_fraction
                                               uncertainty measures (``uncertainty``)
The plain reference used by tests and benchmarks lives in ``dgan_al.interpreter.reference``.
"""

from dgan_al.interpreter.bilinear import gather_features
from dgan_al.interpreter.ensemble import ImageScores, PixelEnsemble, Prediction, scoring_pixels
from dgan_al.interpreter.keypoints import KeypointPrediction
from dgan_al.interpreter.sampling import IGNORE, sample_training_pixels
from dgan_al.interpreter.uncertainty import (
    image_score_sum,
    image_score_top_fraction,
    js_divergence,
    majority_vote,
)

__all__ = [
    "IGNORE",
    "ImageScores",
    "KeypointPrediction",
    "PixelEnsemble",
    "Prediction",
    "gather_features",
    "image_score_sum",
    "image_score_top_fraction",
    "js_divergence",
    "majority_vote",
    "sample_training_pixels",
    "scoring_pixels",
]

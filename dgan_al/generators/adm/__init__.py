"""guided-diffusion (ADM) UNets as a feature source: the network, its checkpoint reader, and
ddpm-segmentation's decoder features (noise a real image to step t, read chosen ``output_blocks``)."""

from dgan_al.generators.adm.checkpoint import ADMCheckpoint, load_adm_checkpoint
from dgan_al.generators.adm.features import (
    DEFAULT_BLOCKS,
    DEFAULT_STEPS,
    alphas_cumprod,
    beta_schedule,
    extract_features,
    fixed_noise,
    q_sample,
)
from dgan_al.generators.adm.unet import UNetConfig, UNetModel

__all__ = ["ADMCheckpoint", "DEFAULT_BLOCKS", "DEFAULT_STEPS", "UNetConfig", "UNetModel", "alphas_cumprod",
           "beta_schedule", "extract_features", "fixed_noise", "load_adm_checkpoint", "q_sample"]

"""dgan-al: an active-learning annotation toolkit for DatasetGAN.

A pretrained StyleGAN plus a handful of human part annotations become an unlimited labelled
segmentation dataset; each round the tool picks the GAN images most worth a person's time.
"""

__version__ = "0.1.0"

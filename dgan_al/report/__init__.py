"""Pictures: the class palette, mask overlays, contact sheets and plots (PNG)."""

from dgan_al.report.palette import class_palette, colorize, overlay
from dgan_al.report.figures import pyplot, save_figure
from dgan_al.report.sheets import contact_sheet, heatmap, save_mask_png

__all__ = ["class_palette", "colorize", "overlay", "contact_sheet", "heatmap", "save_mask_png", "pyplot", "save_figure"]

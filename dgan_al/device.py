"""Which torch device a command runs on: ``resolve_device("auto" | "cpu" | "cuda" | "cuda:N")``."""

from __future__ import annotations

import torch

from dgan_al.errors import UserError, quote


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when present, else the CPU; a device that does not exist here is a UserError."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {quote(device)}", setting="device", fix="use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{quote(device)} asked for, but CUDA is not available here", setting="device",
                        fix="use cpu (or auto)")
    return dev

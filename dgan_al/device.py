"""Which torch device a command runs on: ``resolve_device("auto" | "cpu" | "cuda" | "cuda:N")``."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

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


@contextmanager
def cpu_training(threads: int | None) -> Iterator[None]:
    """A training run's CPU settings: ``threads`` torch threads (None: as they are) and denormal floats flushed
    (they slow CPU training down); both restored afterwards."""
    before = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(before)

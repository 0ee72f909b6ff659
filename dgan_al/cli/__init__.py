"""The ``dgan-al`` command line: typer commands that call one workflow each and render with rich.

Each command lives in its own module here and registers itself on ``app`` when imported.
"""

from __future__ import annotations

from dgan_al.cli.app import app
from dgan_al.cli import generator as _generator  # noqa: F401  (registers inspect-generator)
from dgan_al.cli import toy as _toy  # noqa: F401  (registers the toy group)
from dgan_al.cli import annotate as _annotate  # noqa: F401  (registers annotate)
from dgan_al.cli import loop as _loop  # noqa: F401  (registers init, next-round, status, remove)
from dgan_al.cli import dataset as _dataset  # noqa: F401  (registers build-dataset)
from dgan_al.cli import evaluate as _evaluate  # noqa: F401  (registers evaluate)
from dgan_al.cli import simulate as _simulate  # noqa: F401  (registers simulate)
from dgan_al.cli import datasetgan as _datasetgan  # noqa: F401  (registers import-datasetgan)


def main() -> None:
    app(prog_name="dgan-al")


__all__ = ["app", "main"]

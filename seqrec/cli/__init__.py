"""The ``seqrec`` command line (typer): argument parsing, calls into the library, printing.

One module per group of commands: :mod:`~seqrec.cli.training` (quickstart, train),
:mod:`~seqrec.cli.models` (evaluate, recommend, similar, info, export, serve),
:mod:`~seqrec.cli.compare` (compare); ``simulate`` is :mod:`seqrec.value.cli`. The error
contract and message routing are in :mod:`~seqrec.cli.app`. Multi-GPU / multi-node training
uses Lightning Fabric's launcher: see ``docs/cli.md``.
"""

from seqrec.cli import compare, models, training  # noqa: F401  (registers the commands)
from seqrec.cli.app import CliError, app, main
from seqrec.value.cli import app as _simulate

app.add_typer(_simulate, name="simulate",
              help="Simulate users to compare ranking policies and A/B designs.")

__all__ = ["CliError", "app", "main"]

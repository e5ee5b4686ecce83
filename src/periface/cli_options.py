"""Command-line options that several ``periface`` commands share, declared once."""

from __future__ import annotations

import typer

JsonOpt = typer.Option(False, "--json", help="print one JSON document on stdout")
MinProbabilityOpt = typer.Option(
    None, "--min-probability", min=0.0, max=1.0,
    help="keep the faces the crowd finder gives at least this calibrated probability (default: its fitted operating "
         "point, at most 5% false boxes >= 32 px on the photos it was fitted on); higher: fewer false boxes and fewer "
         "faces, lower: the reverse")

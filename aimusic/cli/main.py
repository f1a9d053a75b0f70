"""The ``aimusic`` command line (Typer): this module assembles the app from one module per command group.

Heavy imports (Prefect, Streamlit, models) happen inside the commands, so ``--help`` and the early checks
of options stay fast. Help is plain Click text (``rich_markup_mode=None``): paragraphs are re-wrapped to the
terminal and flags show no type placeholder.
"""

from __future__ import annotations

import typer

from aimusic.cli import backfill, export, labels, models, run, serve, status, train

app = typer.Typer(
    help="aimusic-monitor: collect, score and chart the public debate about AI-generated music.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# the quickstart and the monitoring pass (aimusic/cli/run.py)
app.command()(run.run)
app.command()(run.start)
app.command()(run.demo)
app.command()(run.score)
# reading and serving (aimusic/cli/serve.py, status.py, export.py)
app.command()(serve.dashboard)
app.command()(export.export)
app.command()(status.status)
app.command()(export.forget)
app.command(help=serve.SERVE_HELP, short_help="Serve the scheduled deployments on a Prefect server.")(serve.serve)
app.command()(status.alerts)
# models and signals (aimusic/cli/models.py), history (aimusic/cli/backfill.py)
app.command()(models.rescore)
app.command("eval")(models.evaluate)
app.command("train-head")(models.train_head)
app.command()(backfill.backfill)
app.command()(models.signals)
# labels and custom models (issue 13): aimusic/cli/labels.py, aimusic/cli/train.py
app.add_typer(labels.app, name="labels")
app.command("train")(train.train)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

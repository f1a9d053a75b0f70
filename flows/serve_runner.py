"""The child process that serves the deployments for ``aimusic serve`` (``python -m flows.serve_runner``).

``aimusic serve`` (the supervisor, :func:`flows.deploy.serve`) starts the Prefect server and then this process
in a session of its own, with the deployment specs as JSON on stdin. Keeping Prefect's runner out of the
supervisor is what bounds shutdown: Prefect's runner waits for flow runs in progress when it stops, and a run
under load can take minutes, so the supervisor asks politely (SIGINT), waits a grace period, and then ends this
process and every flow run it started, whatever state they are in (see :func:`flows.deploy.stop_tree`).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from flows.deploy import DeploymentSpec, to_deployments

log = logging.getLogger(__name__)


def read_specs(text: str) -> tuple[list[DeploymentSpec], int | None]:
    """Specs and the run limit from the supervisor's JSON (the inverse of :func:`flows.deploy.specs_json`)."""
    data: dict[str, Any] = json.loads(text)
    specs = [DeploymentSpec(**{**s, "tags": tuple(s.get("tags", ()))}) for s in data["specs"]]
    return specs, data.get("limit")


def main() -> int:
    from prefect import serve as prefect_serve

    specs, limit = read_specs(sys.stdin.read())
    try:
        prefect_serve(*to_deployments(specs), pause_on_shutdown=True, limit=limit, print_starting_message=False)
    except KeyboardInterrupt:
        log.info("runner interrupted: stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""KFP component: what a monitoring alert asks the training run for (the part and a reason).

Reads the `monitor` step's JSON summary (`retrain_targets`, the signals that fired) and returns
the `retrain_part` (generator, ranker or both) and a one-line `reason` the training run files
with its gate decision (`pushgen.loop.carry.retrain_request`).
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def retrain_request(summary: Input[Artifact]) -> NamedTuple(
    "RetrainRequest", [("part", str), ("reason", str)]
):
    """The part to retrain and why, from a monitoring summary.

    Args:
        summary: the monitor step's summary JSON (its checks and their blame).
    """
    import json
    from collections import namedtuple
    from pathlib import Path

    from pushgen.loop.carry import retrain_request as request

    made = request(json.loads(Path(summary.path).read_text()))
    return namedtuple("RetrainRequest", ["part", "reason"])(made["part"], made["reason"])


@dsl.component(**COMPONENT_DEFAULTS)
def retrain_due(summary: Input[Artifact]) -> bool:
    """The monitor's `retrain` verdict, read back from its summary as the one output.

    The pipeline branches on this single `Output` (not on the monitor's named `retrain`
    output) because kfp's local runner resolves a `dsl.If` on a single-output task but not on
    a named output of a multi-output one; on a cluster both work.

    Args:
        summary: the monitor step's summary JSON.
    """
    import json
    from pathlib import Path

    return bool(json.loads(Path(summary.path).read_text()).get("retrain"))

"""KFP component: which parts this training run trains and which it carries over.

`retrain_part` (generator, ranker or both; a monitoring alert names it) becomes, per part, ""
(train it) or the URI of the production release to copy it from (`pushgen.loop.carry.plan_parts`).
Never cached: the production version moves between runs.
"""

from typing import NamedTuple

from kfp import dsl

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def plan(retrain_part: str, store_uri: str) -> NamedTuple(
    "Plan", [("generator_from", str), ("ranker_from", str)]
):
    """Per part: "" to train it, or the production release URI to carry it over from.

    Args:
        retrain_part: "both", "generator" or "ranker": the part(s) this run trains.
        store_uri: the model store whose production release the other part is carried from.
    """
    from collections import namedtuple

    from pushgen.loop.carry import plan_parts

    made = plan_parts(retrain_part, store_uri)
    return namedtuple("Plan", ["generator_from", "ranker_from"])(
        made["generator_from"], made["ranker_from"]
    )

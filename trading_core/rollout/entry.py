"""How a reviewed policy version enters the rollout: the decisions of the promotion DAG, without Airflow.

* :func:`version_to_review`: which version the gates look at: the one asked for, else the newest
  ``candidate_model`` event's, else the version alias ``candidate`` points at.
* :func:`enter_rollout`: after every gate passed, a model without a champion gets this version as its
  first champion (there is nothing to A/B against); otherwise the version becomes the challenger and
  an A/B against the champion starts, on the terms the run declared (:func:`ab_config_from_params`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trading_core.config import Settings
from trading_core.registry import aliases
from trading_core.rollout.ab import ABConfig, start_ab
from trading_core.rollout.sequential import SequentialConfig

log = logging.getLogger(__name__)


def version_to_review(
    settings: Settings, name: str | None, version: str | None, event_extras: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """``{"name", "version"}`` to review: ``version`` (of ``name``, default ``settings.model_name``), else the
    newest of ``event_extras`` (the triggering ``candidate_model`` events, oldest first: its own name and
    version), else alias ``candidate``.

    :raises ValueError: when none of them gives a version.
    """
    name = name or settings.model_name
    if not version and event_extras:
        newest = event_extras[-1]
        name, version = newest.get("name", name), newest.get("version")
    if not version:
        version = aliases.alias_version(aliases.client_for(settings), name, aliases.CANDIDATE)
    if not version:
        raise ValueError(f"no version to review: {name} has no alias {aliases.CANDIDATE!r} and none was given")
    return {"name": str(name), "version": str(version)}


def ab_config_from_params(params: Mapping[str, Any]) -> ABConfig:
    """The A/B's terms from the promotion DAG's params (``champion_share``, ``ab_capital``, ``ab_min_days``,
    ``ab_max_days``, ``ab_alpha``, ``ab_max_challenger_drawdown``); a bad combination raises pydantic's
    ``ValidationError`` naming the field."""
    rule = SequentialConfig(
        min_samples=params["ab_min_days"],
        max_samples=params["ab_max_days"],
        alpha=params["ab_alpha"],
        max_challenger_drawdown=params["ab_max_challenger_drawdown"],
    )
    return ABConfig(champion_share=params["champion_share"], capital=params["ab_capital"], rule=rule)


@dataclass(frozen=True)
class RolloutEntry:
    """How the version entered: crowned (``crowned`` holds the alias change) or challenger in an A/B."""

    champion: str
    challenger: str | None
    ab_id: str | None
    crowned: aliases.AliasChange | None

    def as_reference(self) -> dict[str, Any]:
        """Small JSON for XCom: the champion and, in an A/B, the challenger and the A/B id."""
        if self.crowned is not None:
            return {"champion": self.champion, "ab_id": None}
        return {"champion": self.champion, "challenger": self.challenger, "ab_id": self.ab_id}


def enter_rollout(
    settings: Settings,
    name: str,
    version: str,
    params: Mapping[str, Any],
    *,
    actor: str | None = None,
    dag_run: str | None = None,
) -> RolloutEntry:
    """Crown ``version`` when ``name`` has no champion; otherwise make it the challenger and start its A/B
    against the champion (terms from ``params``, checked before any alias moves; bars after
    ``params["ab_start_after"]``, default the newest in the lake).

    :raises ValueError: when ``version`` already is the champion.
    """
    who = {"actor": actor, "dag_run": dag_run}
    champion = aliases.alias_version(aliases.client_for(settings), name, aliases.CHAMPION)
    if champion is None:
        change = aliases.crown(settings, name, version, reason="passed every gate; no champion to A/B against", **who)
        log.info("%s v%s is the first champion", name, version)
        return RolloutEntry(champion=version, challenger=None, ab_id=None, crowned=change)
    if champion == version:
        raise ValueError(f"{name} v{version} is already the champion")
    config = ab_config_from_params(params)
    aliases.set_challenger(settings, name, version, **who)
    ab_id = start_ab(settings, name, champion, version, config, start_after=params.get("ab_start_after"), **who)
    return RolloutEntry(champion=champion, challenger=version, ab_id=ab_id, crowned=None)

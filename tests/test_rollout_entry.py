"""How a reviewed version enters the rollout (trading_core/rollout/entry.py), without Airflow: which
version the promotion DAG reviews, the first champion crowned directly, a later one as challenger
with its A/B, bad A/B terms refused before any alias moves; and the DAG form's A/B defaults are the
library's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from builders import GOOD_METRICS, register_baseline, trending_feature_set
from pydantic import ValidationError

from trading_core.config import Settings, get_settings
from trading_core.registry import aliases
from trading_core.rollout.ab import ABConfig, ab_id_for, get_ab
from trading_core.rollout.entry import ab_config_from_params, enter_rollout, version_to_review

NAME = "entry-policy"
TERMS = {"champion_share": 0.7, "ab_capital": 50_000.0, "ab_min_days": 5, "ab_max_days": 40, "ab_alpha": 0.1,
         "ab_max_challenger_drawdown": 0.2, "ab_start_after": "2023-06-30"}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("entry-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADING_HOME", str(home))
        mp.chdir(home)
        settings = get_settings()
        _, fsv = trending_feature_set(settings, home)
        versions = [register_baseline(settings, fsv, home, None, GOOD_METRICS, f"v{i}", NAME) for i in range(3)]
        yield {"settings": settings, "versions": versions}


def _aliases(settings: Settings) -> dict[str, str]:
    client = aliases.client_for(settings)
    return {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}


def test_the_version_to_review_is_the_param_then_the_newest_event_then_the_candidate(world: dict) -> None:
    settings: Settings = world["settings"]
    first, second, newest = world["versions"]
    events = [{"name": NAME, "version": first}, {"name": NAME, "version": second}]  # oldest first
    assert version_to_review(settings, NAME, first, events) == {"name": NAME, "version": first}
    assert version_to_review(settings, NAME, None, events) == {"name": NAME, "version": second}
    assert version_to_review(settings, NAME, None, []) == {"name": NAME, "version": newest}  # alias candidate
    with pytest.raises(ValueError, match="no version to review: nobody-registered-this has no alias 'candidate'"):
        version_to_review(settings, "nobody-registered-this", None, [])


def test_the_first_version_is_crowned_and_the_next_one_challenges_it_in_an_ab(world: dict) -> None:
    settings: Settings = world["settings"]
    first, second, third = world["versions"]
    who = {"actor": "test:entry", "dag_run": "test:run"}

    crowned = enter_rollout(settings, NAME, first, TERMS, **who)
    assert crowned.as_reference() == {"champion": first, "ab_id": None}
    assert crowned.crowned is not None and crowned.crowned.alias == aliases.CHAMPION
    assert _aliases(settings)[aliases.CHAMPION] == first
    with pytest.raises(ValueError, match="already the champion"):
        enter_rollout(settings, NAME, first, TERMS, **who)

    bad = {**TERMS, "ab_min_days": 50, "ab_max_days": 30}
    with pytest.raises(ValidationError, match="max_samples"):
        enter_rollout(settings, NAME, second, bad, **who)
    assert aliases.CHALLENGER not in _aliases(settings), "refused terms move no alias"

    entry = enter_rollout(settings, NAME, third, TERMS, **who)
    ab_id = ab_id_for(NAME, first, third)
    assert entry.as_reference() == {"champion": first, "challenger": third, "ab_id": ab_id}
    assert _aliases(settings)[aliases.CHALLENGER] == third
    test = get_ab(settings, ab_id)
    assert test.status == "running" and test.challenger_version == third
    assert ab_config_from_params(TERMS) == ABConfig.model_validate(test.config)


def test_the_promotion_form_defaults_are_the_ab_defaults() -> None:
    """dags/promotion_params.py repeats ABConfig/SequentialConfig's defaults for the form: they must agree."""
    from promotion_params import promotion_params

    defaults = {key: param.value for key, param in promotion_params().items()}
    assert ab_config_from_params(defaults) == ABConfig()

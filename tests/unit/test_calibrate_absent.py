"""Calibration that expects an incomplete KB: mentions copied as if their gold entity were absent."""

from __future__ import annotations

import numpy as np

from xned.engine.scoring import FEATURES, Scorer
from xned.export.experts.calibrate import fit, simulate_absent


def _group(priors, sims, gold):
    f = Scorer().features(np.asarray(priors, np.float32), np.asarray(sims, np.float32), None)
    return f, gold


def test_the_gold_row_goes_and_the_rest_is_as_a_kb_without_it_would_score_it():
    f, g = _group([0.75, 0.25], [0.84, 0.80], 0)
    ((rest, label),) = simulate_absent([(f, g)], 1.0)
    assert label == -2 and rest.shape == (1, len(FEATURES))
    assert np.isclose(np.exp(rest[0, 0]), 1.0)  # 0.25 / (1 - 0.75)
    assert rest[0, 1] == np.float32(0.80) and rest[0, 2] == 0.0  # the best cosine left
    assert simulate_absent([(f, g)], 0.0) == []
    assert simulate_absent([(f[:1], 0)], 1.0) == []  # no other candidate: nothing to be fooled by
    assert simulate_absent([(f, -2)], 1.0) == []


def test_fitting_on_absent_gold_raises_the_bar_for_a_link():
    rng = np.random.default_rng(0)
    groups = []
    for _ in range(400):  # two same-name candidates, the context closer to the gold one
        sims = [0.84 + rng.normal(0, 0.005), 0.80 + rng.normal(0, 0.005)]
        groups.append(_group([0.5, 0.5], sims, 0))
    plain = fit(groups)
    expecting = fit(groups + simulate_absent(groups, 0.5, seed=1))

    def conf(result, f):
        sc = Scorer(result["weights"], result["bias"], result["threshold"])
        return float(sc.score(f)[1].max())

    trap = _group([1.0], [0.80], 0)[0]  # the weaker candidate alone: its entity is what is missing
    assert conf(plain, trap) >= plain["threshold"]  # without the simulation it would be linked
    assert conf(expecting, trap) < expecting["threshold"]  # with it, NIL
    assert expecting["fit"]["mentions"] > plain["fit"]["mentions"]

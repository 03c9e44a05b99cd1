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


def test_the_threshold_is_the_highest_within_one_standard_error_of_the_best():
    from xned.export.experts.calibrate import choose_threshold

    # 400 mentions: confidences spread evenly; the top candidate is right above 0.5 and, below
    # it, NIL is right. Accuracy peaks at 0.5 and falls one mention per 0.0025 either way.
    n = 400
    conf = (np.arange(n) + 0.5) / n
    right = conf > 0.5
    nil = ~right
    groups = [(np.zeros((1, len(FEATURES)), np.float32), 0)] * n
    t, acc, best = choose_threshold(conf, right, nil, groups)
    assert best == 1.0 and acc == 1.0 and t == 0.5  # no spread in accuracy: the best itself
    # half the links above 0.5 are wrong at random: a plateau where 0.5 and higher tie within noise
    rng = np.random.default_rng(0)
    right = (conf > 0.5) & (rng.random(n) < 0.55)
    nil = ~right
    t, acc, best = choose_threshold(conf, right, nil, groups)
    se = np.sqrt(best * (1 - best) / n)
    assert best - se - 1e-9 <= acc <= best and t > 0.5  # higher than the argmax, within the noise
    grid = np.linspace(0.0, 0.95, 96)
    higher = [g for g in grid if g > t]
    accs = [(((conf >= g) & right).sum() + ((conf < g) & nil).sum()) / n for g in higher]
    assert all(a < best - se for a in accs)  # and the highest such

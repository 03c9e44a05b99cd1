import json

import numpy as np
import pytest

from xned.engine.scoring import Scorer, rank
from xned.errors import InputError


def test_similarity_can_overturn_prior():
    s = Scorer()
    f = s.features(np.array([0.8, 0.2]), np.array([0.2, 0.7]), None)
    z, conf = s.score(f)
    assert z[1] > z[0]
    assert conf.min() >= 0.0 and conf.max() <= 1.0


def test_prior_variant_ranks_by_prior_only():
    s = Scorer(variant="prior")
    f = s.features(np.array([0.3, 0.6]), np.array([0.9, 0.1]), None)
    z, conf = s.score(f)
    assert z.argmax() == 1
    assert conf[1] == pytest.approx(0.6, rel=1e-5)


def test_expert_feature_only_where_expert_has_class():
    s = Scorer()
    f = s.features(np.array([0.5, 0.5]), None, np.array([0.9, np.nan], np.float32))
    assert f[0, 4] == 1.0 and f[1, 4] == 0.0
    assert f[1, 3] == 0.0


def test_ties_break_on_prior_then_qid():
    z = np.array([1.0, 1.0, 1.0])
    assert rank(z, np.array([0.2, 0.5, 0.5]), ["Q5", "Q30", "Q4"]) == [2, 1, 0]


def test_unknown_variant():
    with pytest.raises(InputError, match="Unknown scoring variant 'best'"):
        Scorer.load(None, "best")


def test_single_candidate_decided_without_context_only_when_similarity_cannot_change_it():
    s = Scorer(weights={**Scorer().weights, "sim": 10.0, "log_prior": 1.0}, bias=-5.0, threshold=0.5)
    strong = s.features(np.array([1.0]), None, None)  # z in [-5, 5] over sim in [0, 1]: undecided
    assert s.without_context(strong) is None
    s.bias = 1.0  # z in [1, 11]: linked whatever the context
    z, conf = s.without_context(strong)
    assert conf[0] >= s.threshold
    s.bias = -12.0  # z in [-12, -2]: NIL whatever the context
    z, conf = s.without_context(strong)
    assert conf[0] < s.threshold
    two = s.features(np.array([0.5, 0.5]), None, None)
    assert s.without_context(two) is None  # with two candidates the context decides the rank


def test_calibration_records_the_similarity_range_and_a_known_answer(tmp_path):
    from xned.export.experts.calibrate import fit

    rng = np.random.default_rng(0)
    groups = []
    for i in range(300):  # the gold candidate is the more similar one, priors are noise
        sims = rng.uniform(0.6, 0.9, 2)
        gold = int(np.argmax(sims))
        f = Scorer().features(rng.uniform(0.2, 0.8, 2), sims, None)
        groups.append((f, gold if i % 10 else -2))
    single = Scorer().features(np.array([0.9]), np.array([0.75]), None)
    groups += [(single, 0)] * 20
    out = fit(groups)
    assert out["weights"]["sim"] + out["weights"]["sim_gap"] > 10 * abs(out["weights"]["log_prior"])
    lo, hi = out["sim_range"]
    assert 0.6 <= lo < 0.62 and 0.88 < hi <= 0.9
    assert out["sim_typical"] == pytest.approx(0.75)
    (tmp_path / "scoring.json").write_text(json.dumps(out), encoding="utf-8")
    loaded = Scorer.load(tmp_path / "scoring.json")
    assert loaded.sim_range == (lo, hi) and loaded.sim_typical == out["sim_typical"]


def test_ranking_fit_is_the_penalized_maximum_likelihood():
    """Damped Newton: the weights it returns maximize the ridge-penalized conditional
    log-likelihood (on the evaluation protocol's candidate sets, with a retrieved-candidate
    flag, the prior floor and the name cosine, full Newton steps once ran off to weights of
    30,000)."""
    from xned.export.experts.calibrate import RIDGE, fit_ranking

    rng = np.random.default_rng(3)
    groups = []
    for _ in range(400):
        n_alias, n_found = int(rng.integers(1, 4)), 5
        pri = np.concatenate([rng.dirichlet(np.ones(n_alias)), np.zeros(n_found)])
        dense = np.concatenate([np.zeros(n_alias), np.ones(n_found)])
        name = rng.normal(0.1, 0.1, n_alias + n_found)
        gold = int(np.argmax(pri)) if rng.random() < 0.8 else n_alias + int(rng.integers(n_found))
        name[gold] += 0.4 if gold >= n_alias else 0.0
        sims = rng.normal(0.78, 0.03, n_alias + n_found)
        sims[gold] += 0.02
        groups.append((Scorer().features(pri, sims, None, None, dense, name), gold))
    w = fit_ranking(groups)

    def loglik(w):
        total = -0.5 * RIDGE * float(w @ w)
        for f, g in groups:
            z = f.astype(np.float64) @ w
            total += z[g] - z.max() - np.log(np.exp(z - z.max()).sum())
        return total

    best = loglik(w)
    assert np.isfinite(w).all() and best > loglik(np.zeros_like(w))
    for _ in range(20):  # no nearby weights fit better
        assert loglik(w + rng.normal(0, 1e-3, len(w))) <= best + 1e-9
    assert w[7] > 0 and w[0] > 0  # the name cosine and the prior both count for the gold


def test_reliability_table_and_expected_calibration_error():
    from xned.evaluate import Stats

    st = Stats()
    for conf, right in [(0.95, 1), (0.95, 0), (0.92, 1), (0.35, 0)]:
        k = min(int(conf * 10), 9)
        st.cal_n[k] += 1
        st.cal_conf[k] += conf
        st.cal_right[k] += right
    ece, rows = st.reliability()
    assert [r["bin"] for r in rows] == ["0.3-0.4", "0.9-1.0"]
    assert rows[1]["links"] == 3 and rows[1]["right"] == pytest.approx(2 / 3, abs=1e-4)
    # 3/4 * |0.94 - 0.6667| + 1/4 * |0.35 - 0|
    assert ece == pytest.approx(0.75 * (0.94 - 2 / 3) + 0.25 * 0.35, abs=1e-3)


def test_partial_mentions_get_their_own_confidence_not_their_own_ranking():
    """Half the mentions are found only by a name inside them and are mostly NIL: the fit
    gives ``partial`` a negative confidence weight, and it never changes a ranking."""
    from xned.export.experts.calibrate import fit

    rng = np.random.default_rng(1)
    groups = []
    for i in range(600):
        sims = rng.uniform(0.6, 0.9, 2)
        gold = int(np.argmax(sims))
        part = i % 2
        f = Scorer().features(rng.uniform(0.2, 0.8, 2), sims, None, partial=np.full(2, float(part)))
        nil = rng.uniform() < (0.8 if part else 0.1)
        groups.append((f, -2 if nil else gold))
    out = fit(groups)
    assert out["weights"]["partial"] < -1.0
    s = Scorer(weights=out["weights"], bias=out["bias"], threshold=out["threshold"])
    f = s.features(np.array([0.5, 0.5]), np.array([0.85, 0.7]), None)
    fp = s.features(np.array([0.5, 0.5]), np.array([0.85, 0.7]), None, partial=np.ones(2))
    (z, conf), (zp, confp) = s.score(f), s.score(fp)
    assert z.argmax() == zp.argmax() and conf[0] > s.threshold > confp[0]


def test_a_scoring_file_without_the_partial_feature_scores_as_before(tmp_path):
    weights = {k: v for k, v in Scorer().weights.items() if k != "partial"}
    data = {"weights": weights, "bias": 0.5, "threshold": 0.3}
    (tmp_path / "scoring.json").write_text(json.dumps(data), encoding="utf-8")
    s = Scorer.load(tmp_path / "scoring.json")
    f = s.features(np.array([0.6, 0.4]), np.array([0.8, 0.7]), None)
    fp = s.features(np.array([0.6, 0.4]), np.array([0.8, 0.7]), None, partial=np.ones(2))
    np.testing.assert_array_equal(s.score(f)[0], s.score(fp)[0])


def test_the_ranking_fit_leaves_mention_features_out():
    """Even where ``partial`` differs inside a mention (a dense-only candidate beside alias
    candidates) and would predict the gold, the ranking weight stays 0."""
    from xned.engine.scoring import FEATURES
    from xned.export.experts.calibrate import fit_ranking

    rng = np.random.default_rng(2)
    groups = []
    for _ in range(200):
        f = Scorer().features(rng.uniform(0.2, 0.8, 2), rng.uniform(0.6, 0.9, 2), None, partial=np.array([0.0, 1.0]))
        groups.append((f, 0))
    w = fit_ranking(groups)
    assert w[FEATURES.index("partial")] == 0.0 and np.abs(w).max() > 0

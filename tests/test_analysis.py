"Tests of face_report.analysis on a small synthetic run folder (no TensorFlow, a few seconds)."
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from face_report import analysis as an


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return an.load_run(an.make_synthetic_run(tmp_path_factory.mktemp("run") / "run", n=200, seed=1))


def test_no_tensorflow_import():
    code = "import sys, face_report.analysis; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_load_run(run, tmp_path):
    assert sorted(run.history) == ["A", "B"] and run.params["seed"] == 1
    pred = run.predictions("A", "test")
    assert len(pred) == 200 and list(pred.columns) == ["file", "age", "gender", "race", "age_pred", "p_female"]
    assert str(pred.race.dtype) == "Int64"
    assert run.available("val") == ["A", "B"]
    with pytest.raises(ValueError, match="split must be 'val' or 'test', not 'train'"):
        run.predictions("B", "train")
    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        an.load_run(tmp_path)
    (tmp_path / "params.json").write_text("{}")  # a run begun, nothing trained yet
    empty = an.load_run(tmp_path)
    assert (empty.params, empty.metrics, empty.history, empty.available("test")) == ({}, {}, {}, [])
    with pytest.raises(FileNotFoundError, match="No predictions of model B on the val split"):
        empty.predictions("B", "val")


def test_metrics_table_matches_metrics_json(run):
    raw = json.loads((run.dir / "metrics.json").read_text())
    for model in "AB":
        t = an.metrics_table(run.metrics, model)
        assert list(t.Metric) == ["Accuracy", "Loss", "MAE", "Loss"] and list(t.Task) == ["Gender", "Gender", "Age", "Age"]
        tr, va = raw[model]["train"], raw[model]["val"]
        assert t.Training.tolist() == pytest.approx([100 * tr["gender_accuracy"], tr["gender_loss"], tr["age_mae"], tr["age_loss"]])
        assert t.Validation.tolist() == pytest.approx([100 * va["gender_accuracy"], va["gender_loss"], va["age_mae"], va["age_loss"]])
        assert (t["Δ (val–train)"] == t.Validation - t.Training).all()
        assert t["Δ (val–train)"].iloc[0] < 0 < t["Δ (val–train)"].iloc[2]


def test_format_metrics_table_like_report():
    m = {"A": {"train": dict(gender_accuracy=0.9696, gender_loss=0.203, age_mae=4.257, age_loss=4.257),
               "val": dict(gender_accuracy=0.9210, gender_loss=0.286, age_mae=6.517, age_loss=6.518)}}
    md = an.format_metrics_table(an.metrics_table(m, "A"))
    assert "| Gender | Accuracy | 96.96% | 92.10% | −4.860% |" in md
    assert "| Gender | Loss | 0.203 | 0.286 | 0.083 |" in md
    assert "| Age | MAE | 4.257 | 6.517 | 2.260 |" in md


def _metrics(acc_a, acc_b, mae_a, mae_b):
    return {m: {"val": dict(gender_accuracy=g, age_mae=a)} for m, g, a in (("A", acc_a, mae_a), ("B", acc_b, mae_b))}


def test_compare_and_summary():
    c = an.compare_models(_metrics(0.9210, 0.9102, 6.517, 6.017))["val"]
    assert c["accuracy_diff_pp"] == pytest.approx(1.08) and c["mae_diff"] == pytest.approx(-0.5)
    assert (c["gender_winner"], c["age_winner"]) == ("A", "B")
    assert an.summary_sentences(_metrics(0.9210, 0.9102, 6.517, 6.017)).startswith(
        "Model A achieved higher validation accuracy (+1.08 pp) in gender classification, "
        "while Model B achieved lower validation age MAE (−0.50 years).")
    assert an.summary_sentences(_metrics(0.90, 0.95, 7.0, 6.0)).startswith(
        "Model B achieved both higher validation accuracy (+5.00 pp) in gender classification and lower validation age MAE (−1.00 years).")
    assert an.summary_sentences(_metrics(0.90, 0.90, 6.0, 7.0)).startswith("Both models achieved the same validation accuracy (90.00%)")
    assert "cannot be compared yet" in an.summary_sentences({})


def test_summary_and_paragraph_on_run(run):
    assert set(an.compare_models(run.metrics)) == {"val", "test"}
    assert "On the held-out test set (n = 200)" in an.summary_sentences(run.metrics)
    pb = an.performance_paragraph(run.metrics, run.history, "B", run.params)
    assert "Phase 1 (frozen backbone) lasted 12 epochs" in pb and "phase 2 (fine-tuning) lasted 10 epochs" in pb
    pa = an.performance_paragraph(run.metrics, run.history["A"], "A", run.params)
    assert f"validation accuracy of {100 * run.metrics['A']['val']['gender_accuracy']:.2f}%" in pa
    assert "EarlyStopping at epoch 25 (budget: 30 epochs)" in pa


def test_bootstrap_ci():
    x = np.random.default_rng(0).normal(10, 2, 300)
    est, lo, hi = an.bootstrap_ci(x)
    assert est == pytest.approx(x.mean()) and lo < est < hi
    assert an.bootstrap_ci(x) == (est, lo, hi)
    with pytest.raises(ValueError):
        an.bootstrap_ci([])


def test_bootstrap_ci_is_a_95_percent_interval_of_fresh_resamples():
    se = np.arange(100).std() / 10
    _, lo, hi = an.bootstrap_ci(np.arange(100))
    assert (lo, hi) == pytest.approx((49.5 - 1.96 * se, 49.5 + 1.96 * se), abs=0.4)  # a 90% interval: about 44.8 and 54.2
    means = []
    def recorded_mean(v, axis=None):
        means.append(np.mean(v, axis=axis))
        return means[-1]
    an.bootstrap_ci(np.arange(100), statistic=recorded_mean, n_boot=2000)
    assert len(np.unique(np.concatenate(means[:-1]))) > 250  # each chunk of 250 resamples draws its own


def test_mcnemar_known_answers():
    # 2x2 table: both right 40, A only 10, B only 2, both wrong 8 -> exact: 2 * P(X <= 2 | 12, 0.5) = 158 / 4096
    a = [1] * 40 + [1] * 10 + [0] * 2 + [0] * 8
    b = [1] * 40 + [0] * 10 + [1] * 2 + [0] * 8
    r = an.mcnemar_test(a, b)
    assert (r["b"], r["c"]) == (10, 2) and r["p_value"] == pytest.approx(158 / 4096)
    a = [1] * 30 + [0] * 10
    b = [0] * 30 + [1] * 10
    r = an.mcnemar_test(a, b)
    assert r["statistic"] == pytest.approx(9.025) and r["p_value"] == pytest.approx(stats.chi2.sf(9.025, 1))


def test_mcnemar_uses_chi_squared_from_25_discordant_pairs():
    def pairs(b, c):
        return [1] * b + [0] * c + [1] * 20, [0] * b + [1] * c + [1] * 20
    r = an.mcnemar_test(*pairs(20, 5))
    assert (r["method"], r["statistic"]) == ("chi-squared with continuity correction", pytest.approx(14**2 / 25))
    assert an.mcnemar_test(*pairs(19, 5))["method"] == "exact binomial"


def test_paired_age_test():
    rng = np.random.default_rng(0)
    ea = rng.exponential(6, 300)
    eb = ea + 1 + rng.normal(0, 0.5, 300)
    r = an.paired_age_test(ea, eb, n_boot=500)
    assert r["mae_diff"] == pytest.approx(eb.mean() - ea.mean()) and 0 < r["ci_low"] < r["mae_diff"] < r["ci_high"]
    assert r["p_value"] < 1e-3 and r["n"] == 300 and r["test"] == "paired permutation (mean)"


def test_paired_age_test_p_value_is_of_the_mean_difference():
    "Most images a year better, a few five years worse: a worse MAE, which the interval and the p-value both see"
    d = np.r_[np.full(70, -1.0), np.full(30, 5.0)]
    r = an.paired_age_test(np.full(100, 5.0), 5.0 + d, n_boot=500)
    assert r["mae_diff"] == pytest.approx(0.8) and r["ci_low"] > 0
    assert r["p_value"] < 0.01 and stats.wilcoxon(d).pvalue > 0.5  # a test of the median would not see it
    assert an.paired_age_test(np.full(100, 5.0), 5.0 + d, seed=3)["p_value"] == an.sign_flip_test(d, seed=3)


def test_sign_flip_test_known_answers():
    assert an.sign_flip_test([1.0, 2.0, 3.0, 4.0], n_perm=20_000) == pytest.approx(2 / 16, abs=0.01)  # exact 2 of 16 sign patterns
    assert an.sign_flip_test(np.zeros(10), n_perm=9) == 1.0
    assert an.sign_flip_test(np.ones(40), n_perm=9) == pytest.approx(0.1)  # (1 + 0) / (1 + 9)


def test_auc_cs_ece():
    assert an.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9]) == 1.0
    rng = np.random.default_rng(1)
    assert an.roc_auc(rng.integers(0, 2, 5000), rng.random(5000)) == pytest.approx(0.5, abs=0.03)
    assert an.cs_at([1, 5, 6, 10], k=5) == 0.5
    p = np.repeat([0.05, 0.25, 0.75, 0.95], 20)
    y = np.concatenate([[1] * 1 + [0] * 19, [1] * 5 + [0] * 15, [1] * 15 + [0] * 5, [1] * 19 + [0] * 1])
    assert an.expected_calibration_error(y, p) == pytest.approx(0, abs=1e-12)
    assert an.expected_calibration_error([1, 1], [0.0, 0.0]) == pytest.approx(1.0)
    # bins weighted by their size: (90 * 0.05 + 10 * 0.95) / 100, not (0.05 + 0.95) / 2
    assert an.expected_calibration_error(np.zeros(100), np.r_[np.full(90, 0.05), np.full(10, 0.95)]) == pytest.approx(0.14)


def test_significance_table(run):
    sig = an.significance_table(run, "val", n_boot=200)
    assert len(sig) == 12 and set(sig.Model) == {"A", "B", "A vs B"}
    est = sig.set_index(["Model", "Quantity"]).Estimate
    assert est["A", "Gender accuracy (%)"] == pytest.approx(100 * run.metrics["A"]["val"]["gender_accuracy"])
    assert est["B", "Age MAE (years)"] == pytest.approx(run.metrics["B"]["val"]["age_mae"])
    ci = sig.dropna(subset=["CI low"])
    assert ((ci["CI low"] <= ci.Estimate) & (ci.Estimate <= ci["CI high"])).all()
    assert sig[sig.Model == "A vs B"]["p-value"].between(0, 1).all()
    assert "| paired permutation (mean) |" in an.format_significance_table(sig)
    assert sig.set_index("Quantity")["p-value"]["Age MAE difference B−A (years)"] == an.paired_p_values(run)["val"]["age"]


def test_significance_table_rows_are_the_quantities_they_name(run):
    fives = an.Run(run.dir, run.params, run.metrics, run.history)  # every tenth age error exactly 5 years
    for m in an.MODELS:
        fives._cache[m, "val"] = run.predictions(m, "val").assign(age_pred=lambda p: p.age_pred.where(p.index % 10 > 0, p.age - 5))
    est = an.significance_table(fives, "val", n_boot=50).set_index(["Model", "Quantity"]).Estimate
    acc = {m: (fives.predictions(m, "val").p_female.gt(0.5).astype(int) == fives.predictions(m, "val").gender).mean() for m in "AB"}
    assert acc["A"] != acc["B"]
    assert est["A vs B", "Gender accuracy difference A−B (pp)"] == pytest.approx(100 * (acc["A"] - acc["B"]))
    for m in "AB":
        p = fives.predictions(m, "val")
        err = (p.age_pred - p.age).abs()
        assert (err == 5).sum() >= 20
        assert est[m, "CS@5 (%)"] == pytest.approx(100 * (err <= 5).mean())
        assert est[m, "Gender ROC AUC"] == pytest.approx(an.roc_auc(p.gender, p.p_female))
        bins = np.minimum(np.floor(p.p_female * 10), 9)
        ece = sum((bins == k).sum() * abs(p.gender[bins == k].mean() - p.p_female[bins == k].mean()) for k in set(bins)) / len(p)
        assert est[m, "Gender ECE"] == pytest.approx(ece)


def test_paired_p_values_per_seed_and_n_perm(run):
    first = an.paired_p_values(run)
    (ca, ea), (cb, eb) = (an.per_image_results(run.predictions(m, "val")) for m in an.MODELS)
    for kw in (dict(seed=1), dict(n_perm=99)):
        other = an.paired_p_values(run, **kw)
        assert other is not first and other["val"]["age"] == an.sign_flip_test(eb - ea, **kw)
    assert an.paired_p_values(run) is first


def test_pair_predictions_refuses_other_labels(run):
    val = run.predictions("A", "val")
    with pytest.raises(ValueError, match="have another age"):
        an.pair_predictions(val, val.assign(age=val.age + 1))
    with pytest.raises(ValueError, match="200 of the 200 images have another gender"):
        an.pair_predictions(val, val.assign(gender=1 - val.gender))


def test_summary_states_leads_only_as_far_as_the_tests_support():
    m = _metrics(0.912, 0.910, 5.87, 5.84)
    assert an.summary_sentences(m, {"val": {"gender": 0.921, "age": 0.885}}).startswith(
        "The two models were level within the noise in validation gender accuracy (Model A +0.20 pp, McNemar p = 0.921) "
        "and in validation age MAE (Model B −0.03 years, paired permutation p = 0.885).")
    assert an.summary_sentences(m, {"val": {"gender": 0.0113, "age": 0.885}}).startswith(
        "Model A achieved higher validation accuracy (+0.20 pp, McNemar p = 0.0113) in gender classification, while the two models")


def test_ties_and_leads_are_those_of_the_printed_figures():
    assert an.summary_sentences(_metrics(0.9, 0.9, 5.004, 5.006)).startswith(
        "Both models achieved the same validation accuracy (90.00%) in gender classification, while Model A achieved lower "
        "validation age MAE (−0.01 years). Validation age MAE was 5.00 years for Model A and 5.01 for Model B.")  # the tie not said twice
    assert an.summary_sentences(_metrics(0.9, 0.9, 5.0151, 5.0249)).startswith(
        "Both models achieved the same validation accuracy (90.00%) in gender classification and the same validation age MAE (5.02 years).")


def _copy(run, tmp_path):
    import shutil
    shutil.copytree(run.dir, tmp_path / "copy")
    return tmp_path / "copy"


def test_check_metrics_refuses_edited_metrics(run, tmp_path):
    assert an.check_metrics(run) is run
    folder = _copy(run, tmp_path)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["A"]["val"]["gender_accuracy"] = 0.99
    (folder / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match=r"metrics.json gives Model A's validation gender_accuracy as 0.99, but .*A_val.csv gives"):
        an.check_metrics(an.load_run(folder))


def test_check_metrics_passes_the_committed_reference_run():
    from pathlib import Path
    run = an.load_run(Path(__file__).resolve().parents[1] / "report")
    assert {"A", "B"} <= set(run.metrics) and an.check_metrics(run) is run and an.missing_predictions(run) == []


def test_missing_predictions(run, tmp_path):
    folder = _copy(run, tmp_path)
    (folder / "predictions" / "A_test.csv").unlink()
    assert an.missing_predictions(an.load_run(folder)) == [folder / "predictions" / "A_test.csv"]
    assert an.missing_predictions(run) == []


@pytest.mark.parametrize("column, value, message", [
    ("age_pred", "thirty", "age_pred must be a finite number in every row; row 2 (line 4 of the file) holds 'thirty'"),
    ("p_female", float("nan"), "p_female must be a finite number in every row; row 2 (line 4 of the file) holds nothing"),
    ("age", float("nan"), "age must be a finite number in every row; row 2"),
    ("p_female", -0.1, "p_female must be a probability (0 to 1) in every row; row 2 (line 4 of the file) holds -0.1"),
    ("gender", 3, "gender must be 0 (male) or 1 (female) in every row; row 2 (line 4 of the file) holds 3"),
])
def test_bad_predictions_are_named(run, tmp_path, column, value, message):
    folder = _copy(run, tmp_path)
    path = folder / "predictions" / "A_test.csv"
    frame = pd.read_csv(path).astype({column: object})
    frame.loc[2, column] = value
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="A_test.csv: " + message.replace("(", r"\(").replace(")", r"\)")):
        an.load_run(folder).predictions("A", "test")


def test_against_report_meets_an_equal_figure(run):
    equal = an.Run(run.dir, run.params, run.metrics, run.history)
    equal._cache["A", "val"] = pd.DataFrame({"file": "face.jpg", "age": 30, "gender": 1, "race": pd.NA, "age_pred": 36.517,
                                             "p_female": np.r_[np.full(921, 0.9), np.full(79, 0.1)]})
    vs = an.against_report(equal, {"A": an.REPORT_METRICS["A"]}, n_boot=200)
    assert vs.Verdict.tolist() == ["met", "met"]
    md = an.format_against_report(vs)
    assert "| 92.10 | 92.10 [" in md and "| +0.00 [" in md and "| 1.00 | met |" in md


def test_group_breakdown(run):
    pred = run.predictions("B", "test")
    for by in ("age_band", "gender", "race"):
        gb = an.group_breakdown(pred, by)
        assert list(gb.columns) == [by, "n", "age_mae", "gender_accuracy_pct"] and gb.n.sum() == len(pred)
    assert set(an.group_breakdown(pred, "gender").gender) == {"Male", "Female"}
    toy = pd.DataFrame({"age": [12, 13, 60], "gender": [0, 1, 1], "race": pd.array([0, None, 4], dtype="Int64"),
                        "age_pred": [10, 13, 70], "p_female": [0.1, 0.2, 0.9]})
    assert an.group_breakdown(toy, "age_band").age_band.tolist() == ["0–12", "13–19", "60+"]
    assert an.group_breakdown(toy, "race").race.tolist() == ["White", "Other", "Unknown"]
    three = pd.DataFrame({"age": [30, 31, 32], "gender": [0, 1, 1], "race": pd.array([0, 1, 2], dtype="Int64"),
                          "age_pred": [30, 31, 41], "p_female": [0.2, 0.9, 0.8]})
    assert an.group_breakdown(three, "age_band").age_mae.tolist() == [3.0]  # the mean of 0, 0 and 9, not their median


@pytest.mark.parametrize("make, n_axes", [
    (lambda r: an.plot_learning_curves(r.history["A"], "learning curves", "Model A"), 4),
    (lambda r: an.plot_learning_curves(r.history["B"], "learning curves", "Model B"), 4),
    (lambda r: an.plot_reliability(r.predictions("B", "test").gender, r.predictions("B", "test").p_female, "B", "Model B"), 2),
    (lambda r: an.plot_group_breakdown(r, "test"), 6),
    (lambda r: an.plot_age_scatter(r, "val"), 2),
    (lambda r: an.error_gallery(r, "A", "test", n=6, task="age"), 6),
    (lambda r: an.error_gallery(r, "B", "val", n=4, task="gender"), 4),
])
def test_figures(run, tmp_path, make, n_axes):
    fig = make(run)
    assert len(fig.axes) == n_axes and fig.get_suptitle()
    assert an.save_figure(fig, tmp_path / "sub" / "f.png").stat().st_size > 1000


def test_gallery_missing_images(tmp_path):
    run = an.load_run(an.make_synthetic_run(tmp_path / "run", n=50))
    for f in (run.dir / "images").glob("*.jpg"):
        f.unlink()
    fig = an.error_gallery(run, "A", n=3)
    assert len(fig.axes) == 3 and fig.axes[0].texts[0].get_text() == "image not found"

"""The committed reference report (report/): every number in its Tables 1 and 2 equals the committed metrics.json."""
import json, re
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[1] / "report"


def table_after(html, caption):
    i = html.index(caption)
    body = html[i:html.index("</table>", i)]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)[1:]
    return [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S) for r in rows]


def number(cell):
    return float(cell.replace("−", "-").replace("%", "").strip())


@pytest.mark.parametrize("model,page,caption", [("A", "2_custom_cnn.html", "Table 1."), ("B", "3_pretrained_cnn.html", "Table 2.")])
def test_tables_equal_metrics(model, page, caption):
    m = json.loads((REPORT / "metrics.json").read_text())[model]
    rows = table_after((REPORT / "site" / page).read_text(), caption)
    expected = {("Gender", "Accuracy"): (100 * m["train"]["gender_accuracy"], 100 * m["val"]["gender_accuracy"], 2),
                ("Gender", "Loss"): (m["train"]["gender_loss"], m["val"]["gender_loss"], 3),
                ("Age", "MAE"): (m["train"]["age_mae"], m["val"]["age_mae"], 3),
                ("Age", "Loss"): (m["train"]["age_loss"], m["val"]["age_loss"], 3)}
    assert len(rows) == 4
    for task, metric, train, val, delta in rows:
        tr, va, digits = expected[(task.strip(), metric.strip())]
        tol = 0.51 * 10 ** -digits
        assert abs(number(train) - tr) <= tol and abs(number(val) - va) <= tol, (task, metric)
        assert abs(number(delta) - (va - tr)) <= 2 * tol + 1e-3, (task, metric)


def test_committed_run_files():
    for f in ["params.json", "metrics.json", "history_A.csv", "history_B.csv", "site/index.html"]:
        assert (REPORT / f).exists(), f
    assert not list(REPORT.rglob("*.keras")) and not list(REPORT.rglob("*.h5")), "no model weights in report/"
    m = json.loads((REPORT / "metrics.json").read_text())
    assert m["profile"] == "paper" and set(m["wall_seconds"]) >= {"A", "B_phase1", "B_phase2", "total"}


def test_readme_results_equal_metrics():
    "The README's table of the reference run: its point figures are metrics.json's, and the written report's its own"
    readme = (REPORT.parent / "README.md").read_text()
    m = json.loads((REPORT / "metrics.json").read_text())
    report = {("A", "gender"): 92.10, ("A", "age"): 6.517, ("B", "gender"): 91.02, ("B", "age"): 6.017}
    rows = re.findall(r"^\| Model ([AB]), (gender accuracy|age MAE \(years\)) \| ([\d.]+)%? \| ([\d.]+)%? \[.*?\] \| ([\d.]+)%? \[.*?\] \|$",
                      readme, re.M)
    assert len(rows) == 4, rows
    for model, quantity, written, val, test in rows:
        task = quantity.split()[0]
        key, scale = ("gender_accuracy", 100) if task == "gender" else ("age_mae", 1)
        assert number(written) == report[model, task]
        for split, shown in (("val", val), ("test", test)):  # shown with 2 decimals
            assert abs(number(shown) - scale * m[model][split][key]) <= 0.0051, (model, task, split, shown)


def test_committed_predictions_give_metrics():
    "The committed predictions are the run's own: they give metrics.json's figures, so a later run on its splits can be paired with it"
    import pandas as pd
    from face_report.training import gender_correct
    m = json.loads((REPORT / "metrics.json").read_text())
    for model in "AB":
        for split in ("val", "test"):
            pred = pd.read_csv(REPORT / "predictions" / f"{model}_{split}.csv")
            assert len(pred) == m[model][split]["n"], (model, split)
            assert gender_correct(pred.p_female, pred.gender).mean() == pytest.approx(m[model][split]["gender_accuracy"], abs=1e-12)
            assert (pred.age_pred - pred.age).abs().mean() == pytest.approx(m[model][split]["age_mae"], abs=1e-9)


def test_table_e5_is_the_committed_predictions():
    "Table E5 of the committed site is what `against_report` gives today for the committed predictions (a change of its test needs page 5 executed again)"
    from face_report.analysis import _REPORT_DIGITS, against_report, format_p, load_run
    run = load_run(REPORT)
    vs = against_report(run, seed=int(run.params.get("seed") or 0))
    rows = table_after((REPORT / "site" / "5_beyond_the_report.html").read_text(), "<strong>Table E5.</strong>")
    assert len(rows) == len(vs) == 4
    for row, (_, want) in zip(rows, vs.iterrows()):
        model, quantity, written, this_run, difference, p, verdict, n = (cell.strip() for cell in row)
        assert (model, quantity, verdict, int(n)) == (want.Model, want.Quantity, want.Verdict, want.n)
        assert number(written) == pytest.approx(want.Report) and p == format_p(want.p)
        low, high = (number(x) for x in re.search(r"\[(.*), (.*)\]", difference).groups())
        digits = _REPORT_DIGITS[quantity]
        assert number(this_run.split()[0]) == pytest.approx(round(want["This run"], digits))
        assert (low, high) == pytest.approx((round(want["Difference low"], digits), round(want["Difference high"], digits)))

"""End to end: the quick profile on the real UTKFace archive (when present), from `face-report run` to the site."""
import os, re, subprocess, sys, time
from pathlib import Path

import pytest

REAL = Path(os.environ.get("FACE_REPORT_DATA") or Path(__file__).resolve().parents[2] / "shared/data/UTKFace.tar.gz")
PAGES = {"1_introduction": 2, "2_custom_cnn": 3, "3_pretrained_cnn": 2, "4_summary": 0, "5_beyond_the_report": 8, "6_appendix": 0}  # figures


@pytest.mark.skipif(not REAL.exists(), reason="real UTKFace archive not present")
def test_quick_profile_end_to_end(tmp_path):
    run = tmp_path / "quick"
    t = time.time()
    r = subprocess.run([str(Path(sys.executable).parent / "face-report"), "run", "--profile", "quick", "--data", str(REAL),
                        "--run-dir", str(run), "--engine", "pandoc"], capture_output=True, text=True, timeout=1500)
    print(f"quick profile: {time.time() - t:.0f} s wall")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Report site:" in r.stdout
    for f in ["params.json", "metrics.json", "history_A.csv", "history_B.csv", "model_A.keras", "model_B.keras",
              "predictions/A_val.csv", "predictions/A_test.csv", "predictions/B_val.csv", "predictions/B_test.csv",
              "phase1_B.json", "log_A.txt", "log_B.txt"]:
        assert (run / f).exists(), f
    site = run / "site"
    index = (site / "index.html").read_text()
    for page, n_figures in PAGES.items():
        html = (site / f"{page}.html").read_text()
        assert f"{page}.html" in index, page
        assert len(re.findall(r'<img[^>]+src="data:image/png;base64', html)) == n_figures, page
        assert "Traceback" not in html, page
    two = (site / "2_custom_cnn.html").read_text()
    assert "Table 1" in two and "<table" in two and "Figure 1" in two and "Figure 2" in two and "Figure 3" in two
    four = " ".join((site / "4_summary.html").read_text().split())  # section 4's comparison, with numbers from this run
    assert re.search(r"Validation (gender accuracy was [\d.]+% for Model A and [\d.]+% for Model B|age MAE was [\d.]+ years for Model A)", four), four[-3000:]  # (a tied figure is in the lead sentence)
    assert "McNemar p = " in four and "quick</code> profile" in four
    five = " ".join((site / "5_beyond_the_report.html").read_text().split())
    assert all(f"Table E{i}" in five for i in (1, 2, 3, 4, 5, 6, 7)) and "This Run Against the Written Report" in five
    assert "Mirror Averaging at Test Time" in five and "averaged − single (pp)" in five
    six = (site / "6_appendix.html").read_text()
    assert all(f"Table R{i}" in six for i in (1, 2, 3, 4)) and "Training and Execution Time" in six
    three = (site / "3_pretrained_cnn.html").read_text()
    assert "Table 2" in three and "Figure 4" in three and "Figure 5" in three and "efficientnet_lite0" in three.lower().replace("-", "_")
    # the study tools on the real run: tabulated, and paired with itself (every difference 0, every p-value 1)
    cli = str(Path(sys.executable).parent / "face-report")
    r = subprocess.run([cli, "runs", str(run)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "| quick | A | " in r.stdout and "| quick | B | " in r.stdout, r.stdout + r.stderr
    r = subprocess.run([cli, "compare", str(run), str(run), "--n-boot", "200"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "parameters: the same" in r.stdout, r.stdout + r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith(("| A |", "| B |"))]
    assert len(rows) == 8 and all("| +0.00 [0.00, 0.00] |" in line and "| 1.00 |" in line for line in rows), rows

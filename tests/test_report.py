"""Tests of face_report.report: the site build (pandoc engine), the pipeline's failure handling, the page list.

Fast: no training. The pipeline tests use tiny dummy pages and a stand-in for `face_report.training.resolve_params`.
"""
import ast, json, os, re, shutil, subprocess, sys, types
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest
import yaml

from face_report import report
from face_report.analysis import load_run, make_synthetic_run

ROOT = Path(__file__).resolve().parents[1]
PNG_1x1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


# ---------------------------------------------------------------- page list and _quarto.yml

def _quarto():
    return yaml.safe_load((ROOT/"_quarto.yml").read_text())


def test_quarto_yml_lists_exactly_the_pages():
    cfg = _quarto()
    pages = sorted(p.name for p in (ROOT/"nbs"/"report").glob("*.ipynb"))
    assert pages == [name for name, _ in report.PAGES]
    assert cfg["project"]["type"] == "website"
    assert cfg["project"]["render"] == ["index.md"] + pages
    side = cfg["website"]["sidebar"]["contents"]
    assert [c["href"] for c in side] == ["index.md"] + pages
    assert [c["text"] for c in side[1:]] == [title for _, title in report.PAGES]
    assert cfg["execute"]["enabled"] is False
    assert cfg["format"]["html"]["code-fold"] is True
    assert cfg["format"]["html"]["lightbox"] == "auto"  # figures open at full size, as the pandoc site's links do
    assert (ROOT/"nbs"/"report"/".notest").exists()


@pytest.mark.parametrize("name,title", report.PAGES)
def test_page_notebooks_share_title_and_parameters(name, title):
    nb = nbformat.read(str(ROOT/"nbs"/"report"/name), as_version=4)
    assert report.notebook_title(nb) == title
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    names = [t.id for node in ast.parse(params[0].source).body for t in node.targets]
    assert names == list(report.PARAM_NAMES)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "page notebooks are committed without outputs"


# ---------------------------------------------------------------- site rendering (pandoc engine)

def _executed_page(path, title, i):
    "A small executed notebook: front matter, parameter cells, a markdown output, a PNG, an HTML table, stderr."
    v4 = nbformat.v4
    out = lambda **kw: v4.new_output("display_data", **kw)
    nb = v4.new_notebook(metadata=dict(kernelspec=dict(name="python3", display_name="Python 3", language="python")))
    nb.cells = [
        v4.new_raw_cell(f'---\ntitle: "{title}"\n---'),
        v4.new_code_cell("run_dir = None", metadata=dict(tags=["parameters"]), execution_count=1),
        v4.new_code_cell("run_dir = 'SECRET_INJECTED'", metadata=dict(tags=["injected-parameters"]), execution_count=2),
        v4.new_markdown_cell(f"## {i}.1 First part\n\nSome *static* text."),
        v4.new_code_cell("show()", execution_count=3, outputs=[
            v4.new_output("stream", name="stderr", text="UserWarning: NOISY_STDERR\n"),
            out(data={"text/markdown": f"Accuracy was **9{i}.5%** in this run.",
                      "text/plain": "<IPython.core.display.Markdown object>"}),
            out(data={"text/markdown": f"**Figure {i}.** A caption", "text/plain": "<IPython.core.display.Markdown object>"}),
            out(data={"image/png": PNG_1x1, "text/plain": "<IPython.core.display.Image object>"}),
            out(data={"text/markdown": f"**Table {i}.** A table", "text/plain": "<IPython.core.display.Markdown object>"}),
            v4.new_output("execute_result", execution_count=3, data={
                "text/html": '<table class="dataframe"><thead><tr><th>Split</th><th>n</th></tr></thead>'
                             f'<tbody><tr><td>train</td><td>{i}00</td></tr></tbody></table>',
                "text/plain": "  Split  n"}),
        ]),
        v4.new_markdown_cell(f"## {i}.2 Second part\n\n[Link to the introduction](1_introduction.html)"),
    ]
    nbformat.write(nb, str(path))


@pytest.fixture
def rendered(tmp_path):
    run_dir = make_synthetic_run(tmp_path/"run", n=40)
    (run_dir/"notebooks").mkdir()
    for i, (name, title) in enumerate(report.PAGES, 1):
        _executed_page(run_dir/"notebooks"/name, title, i)
    return run_dir, report.render_site(run_dir, engine="pandoc")


def test_render_site_pandoc_pages(rendered):
    run_dir, index = rendered
    site = index.parent
    assert index == run_dir/"site"/"index.html" and index.exists()
    expected = {"index.html"} | {Path(n).with_suffix(".html").name for n, _ in report.PAGES}
    assert {p.name for p in site.glob("*.html")} == expected
    for i, (name, title) in enumerate(report.PAGES, 1):
        page = (site/Path(name).with_suffix(".html").name).read_text()
        assert f'<h1 class="title">{title}</h1>' in page
        assert page.count('src="data:image/png;base64,') == 1          # the figure, embedded
        assert "<table" in page and f"<td>{i}00</td>" in page          # the HTML table output
        assert f"<strong>9{i}.5%</strong>" in page                     # markdown output rendered, not its placeholder
        assert f"<strong>Figure {i}.</strong>" in page and 'class="caption"' in page
        assert "<details" in page and "show()" in page                  # code folded, not dropped
        assert "NOISY_STDERR" not in page and "SECRET_INJECTED" not in page and "IPython.core.display" not in page
        assert f"{i}.1 First part" in page and 'class="toc"' in page    # page table of contents
        # the shared navigation: every section with the report's titles, this page marked
        for other, other_title in report.PAGES:
            assert f">{other_title}</a>" in page
        assert f'href="{Path(name).with_suffix(".html").name}" class="active"' in page
        assert not re.search(r'(src|href)="https?://', page), "pages must be readable offline"
        link = re.search(r'<a href="(figures/[^"]+\.png)"\s+title="Open the full-size image">\s*<img[^>]*\ssrc="data:image/png', page)
        assert link and (site/link.group(1)).read_bytes()[:4] == b"\x89PNG", "every figure links to its full-size PNG"


def test_render_site_links_resolve(rendered):
    _, index = rendered
    for page in index.parent.glob("*.html"):
        for href in re.findall(r'href="([^"]+)"', page.read_text()):
            if href.startswith(("#", "data:", "mailto:")): continue
            target = unquote(href.split("#")[0])
            assert (index.parent/target).exists(), f"{page.name}: broken link {href}"
    text = index.read_text()
    assert "Run folder" in text and "quick" in text
    assert all(f'href="{Path(n).with_suffix(".html").name}"' in text for n, _ in report.PAGES)


def test_render_site_quarto_requires_quarto(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"quarto is not on PATH: install Quarto .* or use the pandoc engine \(--engine pandoc, engine='pandoc'\)"):
        report.render_site(tmp_path, engine="quarto")
    with pytest.raises(FileNotFoundError, match="run the pipeline first"):
        report.render_site(tmp_path, engine="auto")


def test_render_site_quarto_builds_from_the_executed_pages(rendered, tmp_path, monkeypatch):
    "The Quarto engine with a stand-in `quarto` on PATH: what it is given to render, and that its site is what is kept."
    run_dir, _ = rendered
    (run_dir/"notebooks"/report.PAGES[-1][0]).unlink()  # a run without the appendix: the site lists the five others
    bin_dir = tmp_path/"bin"; bin_dir.mkdir()
    fake = bin_dir/"quarto"
    fake.write_text(f"""#!{sys.executable}
import json, pathlib, sys, yaml
src = pathlib.Path(sys.argv[2])
cfg = yaml.safe_load((src/"_quarto.yml").read_text())
site = src/cfg["project"]["output-dir"]; site.mkdir()
(site/"args.json").write_text(json.dumps(sys.argv[1:] + [str(pathlib.Path.cwd())]))
for name in cfg["project"]["render"]: (site/pathlib.Path(name).with_suffix(".html").name).write_text("<html>" + name + "</html>")
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    index = report.render_site(run_dir, engine="quarto")
    src, pages = run_dir/"site_src", [name for name, _ in report.PAGES[:-1]]
    assert index == run_dir/"site"/"index.html" and index.read_text() == "<html>index.md</html>"
    assert json.loads((index.parent/"args.json").read_text()) == ["render", str(src), str(src)]  # run in site_src
    assert sorted(p.name for p in index.parent.glob("*.html")) == sorted(["index.html"] + [Path(n).with_suffix(".html").name for n in pages])
    cfg = yaml.safe_load((src/"_quarto.yml").read_text())
    assert cfg["project"]["render"] == ["index.md"] + pages
    assert [c["href"] for c in cfg["website"]["sidebar"]["contents"]] == ["index.md"] + pages  # no link to the missing page
    assert cfg["execute"]["enabled"] is False and cfg["format"] == _quarto()["format"]
    assert 'title: "' in (src/"index.md").read_text() and "Run folder" in (src/"index.md").read_text()
    nb = nbformat.read(str(src/pages[0]), as_version=4)
    params = [c for c in nb.cells if set(c.metadata.get("tags", [])) & {"parameters", "injected-parameters"}]
    assert len(params) == 2 and all(c.source.startswith("#| include: false\n") for c in params)
    assert "NOISY_STDERR" not in json.dumps(nb) and "**91.5%**" in json.dumps(nb)  # stderr dropped, outputs kept


def test_render_site_refuses_unfinished_runs(rendered, tmp_path):
    "A folder without executed pages gets no site folders; a run stopped at a failed page gets no site."
    with pytest.raises(FileNotFoundError, match="not_a_run does not exist"):
        report.render_site(tmp_path/"not_a_run", engine="pandoc")
    assert not (tmp_path/"not_a_run").exists()
    (tmp_path/"a_file").touch()
    with pytest.raises(FileNotFoundError, match="a_file is a file"):
        report.render_site(tmp_path/"a_file", engine="pandoc")
    (tmp_path/"empty").mkdir()
    with pytest.raises(FileNotFoundError, match="run the pipeline first"):
        report.render_site(tmp_path/"empty", engine="pandoc")
    assert list((tmp_path/"empty").iterdir()) == []
    run_dir, _ = rendered
    (run_dir/"pipeline.json").write_text(json.dumps({"pages": [{"page": "1_introduction.ipynb", "status": "done"},
                                                               {"page": "2_custom_cnn.ipynb", "status": "failed"}]}))
    with pytest.raises(RuntimeError, match=r"did not finish: 2_custom_cnn.ipynb \(failed\)"):
        report.render_site(run_dir, tmp_path/"site", engine="pandoc")
    assert not (tmp_path/"site").exists()


def test_render_site_quarto_plumbing(rendered, tmp_path, monkeypatch):
    "With quarto on PATH: site_src holds _quarto.yml (the run's pages), index.md and the notebooks; quarto's site is copied."
    run_dir, _ = rendered
    (run_dir/"notebooks"/"6_appendix.ipynb").unlink()                      # a run without the appendix
    fake = tmp_path/"bin"/"quarto"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$@" > quarto_args.txt\nmkdir -p _site && echo "<html>site</html>" > _site/index.html\n')
    fake.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: str(fake) if name == "quarto" else None)
    (tmp_path/"mine").mkdir(); (tmp_path/"mine"/"notes.txt").write_text("kept")
    with pytest.raises(ValueError, match="is not a site that face-report built"):
        report.render_site(run_dir, tmp_path/"mine")                          # quarto's site would replace the folder
    assert (tmp_path/"mine"/"notes.txt").read_text() == "kept"
    index = report.render_site(run_dir, tmp_path/"qsite")
    assert index == tmp_path/"qsite"/"index.html" and "site" in index.read_text()
    assert report.render_site(run_dir, tmp_path/"qsite") == index           # a site of its own is replaced
    src = run_dir/"site_src"
    cfg = yaml.safe_load((src/"_quarto.yml").read_text())
    pages = [n for n, _ in report.PAGES][:-1]
    assert cfg["project"]["render"] == ["index.md"] + pages
    assert [c["href"] for c in cfg["website"]["sidebar"]["contents"]] == ["index.md"] + pages
    assert (src/"quarto_args.txt").read_text().split() == ["render", str(src)]
    assert (src/"index.md").read_text().startswith("---\ntitle:")
    nb = nbformat.read(str(src/"1_introduction.ipynb"), as_version=4)
    tagged = [c for c in nb.cells if set(c.metadata.get("tags", [])) & {"parameters", "injected-parameters"}]
    assert tagged and all(c.source.startswith("#| include: false") for c in tagged)
    assert "NOISY_STDERR" not in json.dumps(nb)


def test_site_notebook_drops_noise():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata=dict(tags=["parameters"])),
                nbformat.v4.new_code_cell("#| echo: false\nprint(2)", outputs=[
                    nbformat.v4.new_output("stream", name="stdout", text="2\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="warn\n")])]
    cells = report.site_notebook(nb).cells
    assert all(c.cell_type == "markdown" for c in cells) and len(cells) == 2
    assert "print(2)" in cells[0].source and "#| echo" not in cells[0].source
    assert "2" in cells[1].source and "warn" not in "".join(c.source for c in cells)


# ---------------------------------------------------------------- the pipeline

@pytest.fixture
def stand_in_training(monkeypatch, tmp_path):
    "A stand-in `face_report.training` whose resolve_params fills the contract's keys with tiny values."
    def resolve_params(profile="quick", **overrides):
        base = dict(profile=profile, data=None, run_dir=str(tmp_path/"default_run"), n_images=20, val_fraction=0.2,
                    test_size=10, seed=42, image_size=32, batch_size=8, epochs_a=1, epochs_b1=1, epochs_b2=1, patience=1,
                    backbone="efficientnet_lite0", weights="imagenet", precision="float32")
        unknown = set(overrides) - set(base)
        if unknown: raise TypeError(f"unknown parameters {unknown}")
        return {**base, **overrides}
    monkeypatch.setitem(sys.modules, "face_report.training",
                        types.SimpleNamespace(resolve_params=resolve_params, check_run=lambda p: Path(p["run_dir"]),
                                              forget_models=lambda p, models, log: log(f"forgot {models} in {p['run_dir']}")))


def test_run_pipeline_runs_pages_and_stops_on_failure(tmp_path, stand_in_training):
    pages = tmp_path/"pages"
    ok = report.make_dummy_page(pages/"1_ok.ipynb", "import sys, face_report\nprint('KERNEL', sys.executable, "
                                "face_report.__file__, seed, retrain)")
    with open(ok) as f: nb = nbformat.read(f, as_version=4)
    nb.cells[1].source = "run_dir = None\nseed = 0\nretrain = None"
    nbformat.write(nb, str(ok))
    bad = report.make_dummy_page(pages/"2_bad.ipynb", "x = 1\nraise ValueError('this page is broken')")
    never = report.make_dummy_page(pages/"3_never.ipynb", "print('never runs')")
    run_dir, lines = tmp_path/"run", []
    (run_dir/"notebooks").mkdir(parents=True)
    shutil.copy(never, run_dir/"notebooks"/"3_never.ipynb")  # a page made from the models that retrain removes
    with pytest.raises(report.PageError) as info:
        report.run_pipeline("quick", run_dir, params=dict(seed=7), pages=[ok, bad, never], retrain=True, log=lines.append)
    msg = str(info.value)
    kept = run_dir/"notebooks"/"2_bad.ipynb"
    assert "2_bad.ipynb" in msg and "In [3]" in msg and "ValueError: this page is broken" in msg and str(kept) in msg
    assert "Pages completed before it: 1_ok.ipynb" in msg
    executed = nbformat.read(str(kept), as_version=4)
    assert any(o.get("output_type") == "error" for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert not (run_dir/"notebooks"/"3_never.ipynb").exists()  # removed by retrain, and never executed
    # the kernel ran this interpreter with this package, and received the resolved parameters
    kernel_line = next(l for l in lines if "KERNEL" in l).split()
    assert kernel_line[1] == sys.executable
    assert Path(kernel_line[2]).resolve() == Path(report.__file__).resolve().parent/"__init__.py"
    assert kernel_line[3:] == ["7", "False"]  # retrain: the models were removed once, before the first page
    assert lines[0] == f"forgot AB in {run_dir.resolve()}"
    # progress: one line per page with elapsed time, then the failure
    assert any(re.match(r"\[1/3\] 1_ok\.ipynb: done in [\d.]+ s", l) for l in lines)
    assert any("[2/3] 2_bad.ipynb: FAILED" in l for l in lines)
    resolved = json.loads((run_dir/"report_params.json").read_text())
    assert resolved["seed"] == 7 and resolved["retrain"] is False and resolved["run_dir"] == str(run_dir.resolve())
    state = json.loads((run_dir/"pipeline.json").read_text())
    assert [(p["page"], p["status"]) for p in state["pages"]] == [("1_ok.ipynb", "done"), ("2_bad.ipynb", "failed")]


def test_run_pipeline_interrupt_says_what_was_kept(tmp_path, stand_in_training, monkeypatch):
    import papermill
    def fake_execute(inp, out, **kw):
        if "2_" in Path(inp).name: raise KeyboardInterrupt
        shutil.copy(inp, out)
    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    pages = [report.make_dummy_page(tmp_path/"p"/f"{i}_page.ipynb", "pass") for i in (1, 2)]
    lines = []
    with pytest.raises(KeyboardInterrupt):
        report.run_pipeline(run_dir=tmp_path/"run", pages=pages, log=lines.append)
    assert (tmp_path/"run"/"notebooks"/"1_page.ipynb").exists()
    said = next(l for l in lines if "2_page.ipynb: interrupted" in l)
    assert "it wrote no notebook" in said and "The same command without --retrain resumes" in said
    assert f"Pages completed before it: 1_page.ipynb. Kept in {tmp_path/'run'}: Model A: not started; Model B: not started." in said
    state = json.loads((tmp_path/"run"/"pipeline.json").read_text())
    assert [p["status"] for p in state["pages"]] == ["done", "interrupted"]


def test_refused_run_changes_nothing(tmp_path):
    "A run folder holding another run, or data that cannot be read: refused before any file is written."
    from face_report.training import TrainingError
    from face_report.data import DataError
    run_dir = tmp_path/"run"; (run_dir/"notebooks").mkdir(parents=True)
    (run_dir/"params.json").write_text(json.dumps({"image_size": 64, "age_bias": "median", "duplicates": "drop"}))  # (without age_bias and duplicates: a run from before them)
    (run_dir/"report_params.json").write_text("{}"); (run_dir/"notebooks"/"1_introduction.ipynb").write_text("kept")
    before = {f: f.read_bytes() for f in run_dir.rglob("*") if f.is_file()}
    with pytest.raises(TrainingError, match="image_size: 64 -> 48"):
        report.run_pipeline("quick", run_dir, params=dict(image_size=48))
    with pytest.raises(DataError, match="not found at .*missing.tar.gz"):
        report.run_pipeline("quick", run_dir, params=dict(image_size=64, data=str(tmp_path/"missing.tar.gz")))
    assert {f: f.read_bytes() for f in run_dir.rglob("*") if f.is_file()} == before


def test_run_pipeline_unknown_page(stand_in_training, tmp_path):
    with pytest.raises(FileNotFoundError, match="9_missing.ipynb"):
        report.run_pipeline(run_dir=tmp_path/"run", pages=["9_missing.ipynb"])


# ---------------------------------------------------------------- read-only run folders

@pytest.fixture
def make_read_only():
    "Makes folders read-only: as root a read-only bind mount (root writes past chmod), unmounted afterwards; else chmod."
    undo = []
    def make(folder):
        folder = Path(folder)
        if os.geteuid() != 0:
            mode = folder.stat().st_mode; folder.chmod(0o555); undo.append(lambda: folder.chmod(mode)); return folder
        if subprocess.run(["mount", "--bind", str(folder), str(folder)]).returncode: pytest.skip("cannot bind-mount here")
        undo.append(lambda: subprocess.run(["umount", str(folder)], check=True))
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(folder), str(folder)]).returncode:
            pytest.skip("cannot remount read-only here")
        return folder
    yield make
    for f in reversed(undo): f()


def _files(folder): return {f: f.read_bytes() for f in Path(folder).rglob("*") if f.is_file()}


def test_render_site_of_a_read_only_run_folder(rendered, tmp_path, make_read_only, capsys):
    "No site in a read-only run folder, said in one line; with --out elsewhere it renders, and writes nothing in the run folder."
    from face_report.cli import main
    run_dir, _ = rendered  # (its site/ and site_src/ exist, as in a finished run)
    make_read_only(run_dir); before = _files(run_dir)
    said = rf"the run folder {re.escape(str(run_dir.resolve()))} is read-only.*: the site cannot be built in it\. Give a writable folder for the site elsewhere \(--out, out_dir=\)"
    with pytest.raises(PermissionError, match=said): report.render_site(run_dir, engine="pandoc")
    with pytest.raises(PermissionError, match=said): report.render_site(run_dir, run_dir/"site2", engine="pandoc")
    assert main(["render", str(run_dir), "--engine", "pandoc"]) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(f"face-report render: error: {said}\n", err) and "Traceback" not in err, err
    index = report.render_site(run_dir, tmp_path/"elsewhere"/"site", engine="pandoc")
    assert index == tmp_path/"elsewhere"/"site"/"index.html" and (index.parent/"1_introduction.html").exists()
    assert sorted(p.name for p in (tmp_path/"elsewhere").iterdir()) == ["site"]  # its scratch folder is removed
    assert _files(run_dir) == before
    make_read_only(tmp_path/"elsewhere")
    with pytest.raises(PermissionError, match=rf"the site folder .*elsewhere/site2 cannot be written: .*elsewhere is read-only.*\(--out, out_dir=\)"):
        report.render_site(run_dir, tmp_path/"elsewhere"/"site2", engine="pandoc")


def test_run_in_a_read_only_run_folder(tmp_path, make_read_only, capsys):
    "`face-report run` in a read-only folder (holding a run, or in which the run folder would be made): one line, nothing written."
    from face_report.cli import main
    run_dir = make_synthetic_run(tmp_path/"run", n=40); (run_dir/"model_A.keras").write_bytes(b"a model")
    empty = tmp_path/"empty"; empty.mkdir()
    make_read_only(run_dir); make_read_only(empty); before = _files(run_dir)
    held = rf"the run folder {re.escape(str(run_dir.resolve()))} is read-only.*: the pipeline writes its parameters and executed pages there\. Give a writable run folder \(--run-dir, run_dir=\), e\.g\. a copy of this one: its trained models are re-used"
    with pytest.raises(PermissionError, match=held): report.run_pipeline("quick", run_dir)
    assert main(["run", "--run-dir", str(run_dir), "--no-render"]) == 1
    assert re.fullmatch(f"face-report run: error: {held}\n", err := capsys.readouterr().err), err
    new = rf"the run folder {re.escape(str(empty.resolve()))}/sub cannot be made: {re.escape(str(empty.resolve()))} is read-only.*\. Give a writable run folder \(--run-dir, run_dir=\)"
    for folder, said in ((empty, rf"the run folder {re.escape(str(empty.resolve()))} is read-only.*there\. Give a writable run folder \(--run-dir, run_dir=\)"),
                         (empty/"sub", new)):
        assert main(["run", "--run-dir", str(folder)]) == 1
        assert re.fullmatch(f"face-report run: error: {said}\n", err := capsys.readouterr().err), err
    assert _files(run_dir) == before and list(empty.iterdir()) == []


# ---------------------------------------------------------------- run-dependent discussion

def test_discussion_follows_the_run(tmp_path):
    run = load_run(make_synthetic_run(tmp_path/"run", n=40))
    def with_test(acc_a, mae_a, acc_b, mae_b, alpha=2.0):  # every p-value is below 2: each lead as the figures state it
        m = json.loads(json.dumps(run.metrics))
        m["A"]["test"].update(gender_accuracy=acc_a, age_mae=mae_a)
        m["B"]["test"].update(gender_accuracy=acc_b, age_mae=mae_b)
        return " ".join(report.discussion_paragraphs(type(run)(run.dir, run.params, m, run.history), alpha=alpha))
    assert "Model A was ahead on both tasks" in with_test(0.95, 5.0, 0.90, 6.0)
    assert "The two models are level on both tasks" in with_test(0.95, 5.0, 0.90, 6.0, alpha=1e-9)  # no lead supported
    assert "would likely be the better choice" in with_test(0.90, 6.0, 0.95, 5.0)
    assert "neither is clearly preferable" in with_test(0.95, 6.0, 0.90, 5.0)
    assert "did not help age estimation" in with_test(0.90, 5.0, 0.95, 6.0)
    partial = type(run)(run.dir, run.params, {"A": run.metrics["A"]}, run.history)
    assert "needs results for both models" in report.discussion_paragraphs(partial)[0]


def test_discussion_names_the_permutation_test(tmp_path):
    from face_report.analysis import paired_p_values
    run = load_run(make_synthetic_run(tmp_path/"run", n=60))
    s = report.discussion_paragraphs(run)[2]
    p = paired_p_values(run, seed=run.params["seed"])["test"]
    assert f"(McNemar p = {p['gender']:.3g}, paired permutation p = {p['age']:.3g}; Section 5.1)" in s and "Wilcoxon" not in s


def test_missing_test_predictions_are_named(tmp_path):
    run_dir = make_synthetic_run(tmp_path/"run", n=40)
    (run_dir/"predictions"/"A_test.csv").unlink()
    s = report.missing_predictions_sentence(load_run(run_dir))
    assert s.startswith("**Missing predictions:** metrics.json holds Model A's test results, but `") and "A\\_test.csv` is missing" in s


def _page_text(name, kind="markdown"):
    "A page notebook's markdown, or its code as Python runs it (comments dropped, strings in single quotes)."
    import ast
    nb = nbformat.read(str(ROOT/"nbs"/"report"/name), as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == kind]
    return "\n".join(ast.unparse(ast.parse(c)) if kind == "code" else c for c in cells)


def test_pages_describe_what_they_compute():
    pages = [name for name, _ in report.PAGES]
    assert not [p for p in pages if "Wilcoxon" in _page_text(p)], "the age tests are paired permutation tests of the mean difference"
    beyond = _page_text("5_beyond_the_report.ipynb")
    assert "between the bars and the diagonal" not in beyond and "each bin's point" in beyond  # the diagram draws points
    for name in ("2_custom_cnn.ipynb", "3_pretrained_cnn.ipynb", "4_summary.ipynb", "5_beyond_the_report.ipynb"):
        assert "check_metrics(load_run(run_dir))" in _page_text(name, "code"), name  # metrics.json's figures are its predictions'
    assert "missing_predictions_sentence(run, 'test')" in _page_text("5_beyond_the_report.ipynb", "code")


def test_pages_explain_mcnemar_and_read_in_order():
    from face_report.analysis import mcnemar_test
    beyond = _page_text("5_beyond_the_report.ipynb")
    # the rule stated in 5.1 is the one `mcnemar_test` applies: exact below 25 discordant images
    assert "fewer than 25 of them it is the exact\ntwo-sided binomial test, otherwise the chi-squared test with continuity correction" in beyond
    assert mcnemar_test([True]*24, [False]*24)["method"] == "exact binomial"
    assert mcnemar_test([True]*25, [False]*25)["method"] == "chi-squared with continuity correction"
    assert "the models were shown randomly flipped faces during training" in beyond and "training showed the models" not in beyond
    assert "(5.6) and, last, tries averaging each face with its mirror image at test time (5.7)" in beyond
    for name in ("2_custom_cnn.ipynb", "3_pretrained_cnn.ipynb"):
        assert "trained now, or re-used" not in _page_text(name) and "is folded below" in _page_text(name), name
        assert "report.curve_paragraph(" in _page_text(name, "code") and "format_metrics_table(metrics_table(" in _page_text(name, "code")
    assert "display_path(splits.source)" in _page_text("1_introduction.ipynb", "code")


def test_appendix_lists_the_pages_before_it(tmp_path):
    run_dir = make_synthetic_run(tmp_path/"run", n=40)
    from face_report.training import DEFAULTS  # the pipeline's record of the run: its own values (a page refuses others)
    made = json.loads((run_dir/"params.json").read_text())
    (run_dir/"report_params.json").write_text(json.dumps({**{k: v for k, v in made.items() if k in DEFAULTS}, "run_dir": str(run_dir)}))
    first = report.make_dummy_page(tmp_path/"pages"/"1_first.ipynb", "print('first')")
    appendix = report.page_paths(["6_appendix.ipynb"])[0]
    out = report.execute_pages([first, appendix], run_dir, dict(run_dir=str(run_dir)), log=lambda m: None)[1]
    html = "".join(o.get("data", {}).get("text/html", "") for c in nbformat.read(str(out), as_version=4).cells
                   if c.cell_type == "code" for o in c.outputs)
    table = html[html.rindex("<table"):]
    assert "1_first.ipynb" in table and "6_appendix.ipynb" not in table  # not itself, still running

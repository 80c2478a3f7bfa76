"""Tests of face_report.predict: inputs as users have them, face detection, run folders, exports and the CLI helpers."""
import argparse, json, os, struct, tarfile, zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
from PIL import Image

from face_report.data import make_sample_utkface
from face_report.models import build_model_a, build_model_b
from face_report import predict as P
import keras  # after face_report, which turns on TensorFlow's oneDNN kernels before TensorFlow is imported
import tensorflow as tf

UTKFACE = Path(os.environ.get("FACE_REPORT_DATA") or Path(__file__).resolve().parents[2] / "shared/data/UTKFace.tar.gz")
SIZE = 32


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "A run folder with a small model_A.keras and model_B.keras (EfficientNet-Lite0 with its ImageNet weights and folded BatchNormalization)."
    d = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)  # initial weights whose outputs differ from image to image (`test_export_matches_original`)
    build_model_a(image_size=SIZE).save(d/"model_A.keras")
    build_model_b("efficientnet_lite0", "imagenet", SIZE).save(d/"model_B.keras")
    (d/"params.json").write_text(json.dumps({"image_size": SIZE, "profile": "test"}))
    return d


@pytest.fixture(scope="module")
def models(run): return P.load_predictor(run)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample_utkface(tmp_path_factory.mktemp("sample"), n=6, with_bad=False)


def _png_header_only(path, w, h):
    "A PNG whose header claims w x h pixels (enough for the size checks, which read only the header)."
    def chunk(kind, data): return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    "One file per awkward case, keyed by case."
    d = tmp_path_factory.mktemp("bad")
    face = Image.fromarray(skimage.data.astronaut()).resize((64, 64))
    files = {}
    def save(name, im, **kw): im.save(d/name, **kw); files[name.split(".")[0]] = d/name
    save("cmyk.jpg", face.convert("CMYK")); save("gray.jpg", face.convert("L"))
    save("alpha.png", face.convert("RGBA")); save("palette.png", face.convert("P"))
    save("tiny.png", face.resize((5, 5)))
    save("huge.png", Image.new("1", (10000, 10000)))  # 100 megapixels, a few kB on disk
    files["bomb"] = _png_header_only(d/"bomb.png", 30000, 30000)  # beyond PIL's decompression-bomb error limit
    (d/"text.jpg").write_text("this is not an image"); files["text"] = d/"text.jpg"
    (d/"empty.png").write_bytes(b""); files["empty"] = d/"empty.png"
    face.save(d/"truncated.jpg"); (d/"truncated.jpg").write_bytes((d/"truncated.jpg").read_bytes()[:400])
    files["truncated"] = d/"truncated.jpg"
    files["missing"] = d/"missing.jpg"
    return files


def test_expand_paths(tmp_path):
    sample = make_sample_utkface(tmp_path/"sample", n=6, with_bad=False)
    (sample/"deeper").mkdir(); Image.new("RGB", (20, 20)).save(sample/"deeper"/"x.PNG")
    empty = tmp_path/"empty"; empty.mkdir()
    found = dict(P.expand_paths([sample, tmp_path/"gone.jpg", str(tmp_path/"*.jpg"), empty]))
    assert sum(e == "" for e in found.values()) == 7  # recursive, extension case-insensitive
    assert found[str(tmp_path/"gone.jpg")] == "file not found"
    assert found[str(tmp_path/"*.jpg")] == "no image files match the pattern"
    assert found[str(empty)] == "no image files in folder"
    assert P.expand_paths(str(sample/"**"/"*.PNG")) == [(str(sample/"deeper"/"x.PNG"), "")]
    assert len(P.expand_paths([sample, sample])) == 7  # no duplicates


@pytest.mark.parametrize("case,reason", [
    ("tiny", "image too small (5x5 px, minimum 16 px a side)"), ("huge", "image too large"), ("bomb", "image too large"),
    ("text", "not an image file"), ("empty", "empty file"), ("truncated", "unreadable or corrupt image"),
    ("missing", "file not found")])
@pytest.mark.parametrize("detect", [False, True])
def test_bad_input_rows(run, models, bad, sample, case, reason, detect):
    good = sorted(sample.glob("*.jpg"))[:2]
    df = P.predict_paths(models, [good[0], bad[case], good[1]], detect=detect, progress=False)
    rows = df[df.file == str(bad[case])]
    assert list(rows.model) == ["A", "B"]
    assert rows.error.str.startswith(reason).all(), rows.error.tolist()
    assert rows.age_pred.isna().all() and rows.p_female.isna().all() and rows.gender_pred.isna().all()
    if not detect:  # the rest of the batch is done, in input order
        assert list(df.file[::2]) == [str(good[0]), str(bad[case]), str(good[1])]
        assert (df[df.file != str(bad[case])].error == "").all()


@pytest.mark.parametrize("case", ["cmyk", "gray", "alpha", "palette"])
def test_converted_inputs_are_predicted(models, bad, case):
    df = P.predict_paths(models, bad[case], progress=False)
    assert (df.error == "").all() and df.p_female.between(0, 1).all() and set(df.gender_pred) <= {0, 1}
    face = Image.fromarray(skimage.data.astronaut()).resize((64, 64))  # as `bad` saved it
    want = np.asarray(face.convert({"gray": "L", "palette": "P"}.get(case, "RGB")).convert("RGB"), np.float32)
    got = P.read_photo(bad[case])  # the PNGs exactly, the JPEGs within their compression's error
    assert got.shape == (64, 64, 3) and np.abs(got.astype(np.float32) - want).mean() < {"cmyk": 8.0, "gray": 8.0}.get(case, 0.5), case


def test_predictions_match_model_on_load_image(models, sample):
    from face_report.data import load_image
    files = sorted(sample.glob("*.jpg"))
    df = P.predict_paths(models, files, model="A", batch_size=4, progress=False)
    x = np.stack([load_image(f, SIZE) for f in files]).astype(np.float32)
    out = models["A"].predict_on_batch(x)
    a = df[df.model == "A"]
    np.testing.assert_allclose(a.p_female, out["gender"][:, 0], atol=1e-5)
    np.testing.assert_allclose(a.age_pred, out["age"][:, 0].clip(0), atol=1e-4)  # the table clips at 0 years
    assert (a.gender_pred == (a.p_female > 0.5).astype(int)).all()
    assert list(df.columns) == P.COLUMNS


def _two_face_checks(df, regions, sizes):
    "Two faces per model, left to right, each box centred in its face's region and of a face's size."
    for name in ("A", "B"):
        rows = df[df.model == name]
        assert list(rows.face) == [0, 1] and (rows.error == "").all()
        for (_, r), (x0, y0, x1, y1) in zip(rows.iterrows(), regions):
            cx, cy = r.box_x + r.box_w/2, r.box_y + r.box_h/2
            assert x0 <= cx <= x1 and y0 <= cy <= y1, (r.box_x, r.box_y, r.box_w, r.box_h)
            assert sizes[0] <= r.box_w <= sizes[1] and sizes[0] <= r.box_h <= sizes[1], (r.box_w, r.box_h)


def test_detect_two_astronauts(models, tmp_path):
    astro = skimage.data.astronaut()
    photo = np.full((600, 1200, 3), 90, np.uint8); photo[44:556, 44:556] = astro; photo[44:556, 644:1156] = astro
    Image.fromarray(photo).save(tmp_path/"two.jpg", quality=92)
    Image.new("RGB", (400, 300), (180, 170, 160)).save(tmp_path/"wall.jpg")
    df = P.predict_paths(models, [tmp_path/"two.jpg", tmp_path/"wall.jpg"], detect=True, progress=False)
    assert list(df.columns) == P.COLUMNS + P.FACE_COLUMNS
    face = (44 + 180, 44 + 70, 44 + 290, 44 + 180)  # where the astronaut's face is centred, in the first copy
    _two_face_checks(df[df.file.str.endswith("two.jpg")], [face, (face[0] + 600, face[1], face[2] + 600, face[3])], (60, 160))
    wall = df[df.file.str.endswith("wall.jpg")]
    assert list(wall.error) == ["no face detected"]*2 and wall.face.isna().all() and wall.box_x.isna().all()


@pytest.mark.skipif(not UTKFACE.exists(), reason="UTKFace archive not present")
def test_detect_two_utkface_crops(models, tmp_path):
    crops = []
    with tarfile.open(UTKFACE) as tar:  # the first crops (sorted names) the detector finds on their own
        for m in tar:
            if not (m.isfile() and m.name.endswith(".jpg")): continue
            im = np.asarray(Image.open(tar.extractfile(m)).convert("RGB"))
            if len(P.detect_faces(im)) == 1: crops.append(im)
            if len(crops) == 2: break
    photo = np.full((480, 800, 3), 128, np.uint8)
    photo[140:340, 60:260] = crops[0]; photo[140:340, 540:740] = crops[1]
    Image.fromarray(photo).save(tmp_path/"pair.jpg", quality=95)
    df = P.predict_paths(models, tmp_path/"pair.jpg", detect=True, progress=False)
    _two_face_checks(df, [(110, 190, 210, 290), (590, 190, 690, 290)], (60, 260))  # centres near the crops' centres


def test_face_crop_is_square_and_inside():
    image = np.zeros((300, 500, 3), np.uint8)
    assert P.face_crop(image, (200, 100, 50, 60)).shape == (108, 108, 3)  # 60 * 1.8
    assert P.face_crop(image, (0, 0, 250, 250)).shape == (300, 300, 3)  # clamped, still square
    assert P.face_crop(image, (480, 280, 20, 20)).shape == (36, 36, 3)  # shifted inside at the corner


def test_load_predictor_run_folder(run, tmp_path):
    assert sorted(P.load_predictor(run)) == ["A", "B"]
    assert list(P.load_predictor(run, "B")) == ["B"]
    assert list(P.load_predictor(run/"model_B.keras")) == ["model_B"]
    assert P.model_image_size(P.load_predictor(run, "A")["A"]) == SIZE
    only_a = tmp_path/"only_a"; only_a.mkdir(); (only_a/"model_A.keras").write_bytes((run/"model_A.keras").read_bytes())
    assert list(P.load_predictor(only_a)) == ["A"]  # a run in progress
    with pytest.raises(P.PredictorError, match="no model_B.keras"): P.load_predictor(only_a, "B")
    with pytest.raises(P.PredictorError, match="neither a run folder"): P.load_predictor(tmp_path/"nothing")
    with pytest.raises(P.PredictorError, match="model file not found"): P.load_predictor(tmp_path/"x.keras")
    (tmp_path/"junk.keras").write_text("junk")
    with pytest.raises(P.PredictorError, match="junk.keras: not a readable Keras model file"): P.load_predictor(tmp_path/"junk.keras")
    import zipfile
    with zipfile.ZipFile(tmp_path/"zip.keras", "w") as z: z.writestr("notes.txt", "a zip, but no model in it")
    with pytest.raises(P.PredictorError, match=r"zip.keras: cannot load the model \(\w+: [^\n]*\)$"): P.load_predictor(tmp_path/"zip.keras")
    with pytest.raises(P.PredictorError, match="model must be"): P.load_predictor(run, "C")


def test_image_size_mismatch_is_refused(run, tmp_path):
    other = tmp_path/"mixed"; other.mkdir()
    (other/"model_A.keras").write_bytes((run/"model_A.keras").read_bytes())
    (other/"params.json").write_text(json.dumps({"image_size": 128}))
    with pytest.raises(P.PredictorError, match=r"takes 32 px images but .*records image_size=128"):
        P.load_predictor(other)


@pytest.mark.parametrize("fmt", P.EXPORT_FORMATS)
def test_export_matches_original(run, models, sample, tmp_path, fmt):
    paths = P.export_model(run, fmt, tmp_path)
    assert [p.name for p in paths] == {"keras": ["model_A.keras", "model_B.keras"],
                                        "savedmodel": ["model_A_savedmodel", "model_B_savedmodel"],
                                        "tflite": ["model_A.tflite", "model_B.tflite"]}[fmt]
    files = sorted(sample.glob("*.jpg"))
    for name, path in zip(("A", "B"), paths):
        pred = P.predict_paths(models[name], files, progress=False)
        scale = max(1.0, float(np.abs(pred.age_pred).max()))
        assert np.ptp(pred.p_female) > 5e-3*scale  # the outputs differ from image to image by more than the tolerance
        assert P.check_export(models[name], path, files) <= 1e-3*scale
        random = np.random.default_rng(1).uniform(0, 255, (3, SIZE, SIZE, 3)).astype(np.float32)
        assert P.check_export(models[name], path, random) <= 1e-3*scale


def test_export_errors(run, models):
    with pytest.raises(P.PredictorError, match="format must be one of"): P.export_model(run, "onnx")
    with pytest.raises(P.PredictorError, match="out_dir is needed"): P.export_model(models["A"], "keras")


def test_tflite_converter_error_names_the_model(run, tmp_path, monkeypatch):
    class Refusing:
        @staticmethod
        def from_saved_model(d): raise RuntimeError("ConverterError: op not supported\nmore detail")
    monkeypatch.setattr(tf.lite, "TFLiteConverter", Refusing)
    with pytest.raises(P.PredictorError, match=r"TensorFlow Lite could not convert A to .*model_A.tflite \(RuntimeError: ConverterError: op not supported\); export it as keras"):
        P.export_model(run, "tflite", tmp_path, model="A")


def _parse(add, argv):
    parser = argparse.ArgumentParser(); add(parser); return parser.parse_args(argv)


def test_predict_main(run, sample, bad, tmp_path, capsys):
    args = _parse(P.add_predict_arguments, [str(run), str(sample), str(bad["tiny"]), "--model", "A", "--batch-size", "3"])
    assert (args.model, args.batch_size, args.detect, args.out, args.progress) == ("A", 3, False, None, True)
    assert P.predict_main(args) == 0
    out = capsys.readouterr()
    df = pd.read_csv(pd.io.common.StringIO(out.out), keep_default_na=False)
    assert list(df.columns) == P.COLUMNS and len(df) == 7 and (df.model == "A").all()
    assert "predicted 6 of 7 files" in out.err
    assert P.predict_main(_parse(P.add_predict_arguments, [str(run), str(bad["tiny"]), "--out", str(tmp_path/"p.csv")])) == 1
    assert P.predict_main(_parse(P.add_predict_arguments, [str(run), str(sample), "--out", str(tmp_path/"o/p.json")])) == 0
    assert len(pd.read_json(tmp_path/"o"/"p.json")) == 12
    assert P.predict_main(_parse(P.add_predict_arguments, [str(run), str(sample), "--out", str(tmp_path/"p.txt")])) == 2
    assert P.predict_main(_parse(P.add_predict_arguments, [str(tmp_path/"norun"), str(sample)])) == 2
    assert "neither a run folder" in capsys.readouterr().err


def test_progress_bar_on_long_lists(models, sample, monkeypatch, capsys):
    monkeypatch.setattr(P, "PROGRESS_MIN", 3)
    P.predict_paths(models, sample, progress=True); assert "predict" in capsys.readouterr().err
    P.predict_paths(models, sample, progress=False); assert "predict" not in capsys.readouterr().err


def test_export_main(run, tmp_path, capsys):
    args = _parse(P.add_export_arguments, [str(run), "--format", "savedmodel", "--out", str(tmp_path), "--model", "A"])
    assert P.export_main(args) == 0
    assert (tmp_path/"model_A_savedmodel"/"saved_model.pb").exists()
    assert "model_A_savedmodel" in capsys.readouterr().out
    assert P.export_main(_parse(P.add_export_arguments, [str(tmp_path/"none")])) == 2
    (tmp_path/"afile").write_text("x")
    assert P.export_main(_parse(P.add_export_arguments, [str(run), "--out", str(tmp_path/"afile")])) == 2
    assert f"face-report export: error: {tmp_path/'afile'} exists and is not a folder" in capsys.readouterr().err


def test_mixed_precision_model_exports_to_tflite(tmp_path):
    "A Model A trained under mixed_bfloat16 (the CPU default where bf16 is in hardware) loads as float32 and converts to TFLite."
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try: build_model_a(image_size=SIZE).save(tmp_path/"model_A.keras")
    finally: keras.mixed_precision.set_global_policy("float32")
    (path,) = P.export_model(tmp_path/"model_A.keras", "tflite", tmp_path/"export")
    model = P.load_predictor(tmp_path/"model_A.keras")["model_A"]
    assert {l.dtype_policy.name for l in model.layers if l.weights} == {"float32"}
    random = np.random.default_rng(2).uniform(0, 255, (3, SIZE, SIZE, 3)).astype(np.float32)
    assert P.check_export(model, path, random) <= 1e-3*max(1.0, float(np.abs(P.predict_arrays(model, random)["age_pred"]).max()))

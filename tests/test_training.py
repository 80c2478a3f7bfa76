"""Training: artefacts, resume after a killed process, NaN handling, the mirrored strategy on two logical CPUs."""
import json, os, re, signal, subprocess, sys, textwrap, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from face_report.data import make_sample_utkface, prepare_splits
from face_report.training import HISTORY_COLUMNS, PHASES, TrainingError, choose_precision, resolve_params, train_model_a


def tiny_params(tmp_path, **kw):
    base = dict(n_images=30, test_size=8, image_size=32, epochs_a=2, epochs_b1=1, epochs_b2=1, batch_size=8,
                eval_batch_size=16, run_dir=str(tmp_path / "run"), data=str(tmp_path / "UTKFace"))
    return resolve_params("quick", **{**base, **kw})


def tiny_splits(p, tmp_path):
    if not Path(p["data"]).exists(): make_sample_utkface(p["data"], n=40)
    return prepare_splits(p["data"], p["n_images"], p["val_fraction"], p["test_size"], p["seed"], p["image_size"],
                          cache_dir=tmp_path / "cache")


def run_child(code, tmp_path, **env):
    env = {**os.environ, "FACE_REPORT_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_when_paused(code, tmp_path, **env):
    "Run `code` in a child process and SIGKILL it once it has written the file `paused` (after the epoch to be cut)."
    child = run_child(code, tmp_path, **env)
    t0 = time.time()
    while not (tmp_path / "paused").exists():
        assert child.poll() is None, child.stdout.read()
        assert time.time() - t0 < 300, "no epoch finished in time"
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL); child.wait()


def test_model_a_artefacts(tmp_path):
    p = tiny_params(tmp_path)
    m = train_model_a(tiny_splits(p, tmp_path), params=p)
    run = Path(p["run_dir"])
    for f in ["params.json", "metrics.json", "history_A.csv", "model_A.keras", "predictions/A_val.csv", "predictions/A_test.csv"]:
        assert (run / f).exists(), f
    h = pd.read_csv(run / "history_A.csv")
    assert list(h.columns) == HISTORY_COLUMNS and h.epoch.tolist() == [1, 2] and np.isfinite(h.loss).all()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["A"] == m and set(m) == {"train", "val", "test"} and m["test"]["n"] == 8
    pred = pd.read_csv(run / "predictions/A_test.csv")
    assert list(pred.columns) == ["file", "age", "gender", "race", "age_pred", "p_female"] and len(pred) == 8
    params = json.loads((run / "params.json").read_text())
    assert params["precision"] == {m: choose_precision("auto", m) for m in PHASES}
    assert params["tensorflow_version"] and "weights_source" in params
    import keras  # the saved model trained with the policy params.json records
    conv = next(l for l in keras.models.load_model(run / "model_A.keras").layers if isinstance(l, keras.layers.Conv2D))
    assert conv.dtype_policy.name == params["precision"]["A"]


def test_the_same_seed_trains_the_same_models(tmp_path, monkeypatch):
    """Initial weights, shuffle order and augmentation follow `seed`: two trainings of both models give the same figures;
    another `train_seed` other ones."""
    from face_report.training import train_model_b
    monkeypatch.setenv("FACE_REPORT_CACHE", str(tmp_path / "cache"))  # empty: the first Model B converts its backbone's weights
    runs = []
    for name in ("first", "second"):
        p = tiny_params(tmp_path, run_dir=str(tmp_path / name))
        s = tiny_splits(p, tmp_path)
        train_model_a(s, params=p); train_model_b(s, params=p)
        h = {m: pd.read_csv(tmp_path / name / f"history_{m}.csv").drop(columns=["wall_seconds"]) for m in "AB"}
        runs.append((h, {f: pd.read_csv(tmp_path / name / "predictions" / f"{f}.csv") for f in ("A_val", "B_val")}))
    (h1, pred1), (h2, pred2) = runs
    for m in "AB": pd.testing.assert_frame_equal(h1[m], h2[m], check_exact=True)
    for f in pred1: pd.testing.assert_frame_equal(pred1[f], pred2[f], check_exact=True)
    p = tiny_params(tmp_path, run_dir=str(tmp_path / "other"), train_seed=1)  # the same images, other draws
    train_model_a(tiny_splits(p, tmp_path), params=p)
    other = pd.read_csv(tmp_path / "other" / "history_A.csv").drop(columns=["wall_seconds"])
    assert not np.allclose(other.loss, h1["A"].loss)


@pytest.mark.parametrize("backend, ema_momentum", [("tensorflow", 0.0), ("tensorflow", 0.9),
                                                    pytest.param("jax", 0.9, marks=pytest.mark.slow)])  # (JAX: the GPU path; test_jax_backend runs always)
def test_resume_after_kill(tmp_path, backend, ema_momentum):
    """Kill the process after epoch 1, start again with the same folder: 4 epochs in all, no duplicated rows, and the
    history and model of an uninterrupted training (batch order, augmentation and dropout masks drawn as it draws them),
    on Keras's TensorFlow backend and on its JAX one (the GPU runs' path)."""
    if backend == "jax": pytest.importorskip("jax")
    p = tiny_params(tmp_path, epochs_a=4, patience=10, ema_momentum=ema_momentum)
    tiny_splits(p, tmp_path)
    code = f"""
        import time, keras, face_report.training as T
        from face_report.training import resolve_params, train_model_a
        from face_report.data import prepare_splits
        assert keras.backend.backend() == {backend!r}
        def pause(epoch, logs):  # after epoch 1 (after its backup), said by a file: the kill lands before the run goes on
            if PAUSE and epoch == 0: open("paused", "w").close(); time.sleep(600)
        def paused(*a, **k):
            cbs, ckpt = callbacks(*a, **k)
            return cbs + [keras.callbacks.LambdaCallback(on_epoch_end=pause)], ckpt
        callbacks, T._callbacks = T._callbacks, paused
        p = {p!r}
        s = prepare_splits(p["data"], p["n_images"], p["val_fraction"], p["test_size"], p["seed"], p["image_size"])
        train_model_a(s, params=p)
    """
    hist = Path(p["run_dir"]) / "history_A.csv"
    kill_when_paused(code.replace("PAUSE", "True"), tmp_path, KERAS_BACKEND=backend)
    assert pd.read_csv(hist).epoch.tolist() == [1] and not (Path(p["run_dir"]) / "model_A.keras").exists()
    code = code.replace("PAUSE", "False")
    done = run_child(code, tmp_path, KERAS_BACKEND=backend); out, _ = done.communicate(timeout=300)
    assert done.returncode == 0, out
    assert "A: resuming at epoch 2/4" in out, out
    h = pd.read_csv(hist)
    assert h.epoch.tolist() == [1, 2, 3, 4], h
    assert (Path(p["run_dir"]) / "model_A.keras").exists()
    whole = Path(p["run_dir"] + "_whole")  # the same training, not interrupted
    straight = run_child(code.replace(repr(p), repr({**p, "run_dir": str(whole)})), tmp_path, KERAS_BACKEND=backend); out, _ = straight.communicate(timeout=300)
    assert straight.returncode == 0, out
    pd.testing.assert_frame_equal(h.drop(columns="wall_seconds"), pd.read_csv(whole / "history_A.csv").drop(columns="wall_seconds"), check_exact=True)
    for split in ("val", "test"):
        assert (Path(p["run_dir"]) / "predictions" / f"A_{split}.csv").read_bytes() == (whole / "predictions" / f"A_{split}.csv").read_bytes()


@pytest.mark.parametrize("killed_in, before", [("B_phase1", [1]), ("B_phase2", [1, 2, 3])])
def test_model_b_resume_after_kill(tmp_path, killed_in, before):
    """Model B killed after the first epoch of phase 1 or of phase 2, started again with the same folder: both phases in
    one history (epochs 1-5, phases 1, 1, 2, 2, 2), no duplicated rows, and the history and predictions of an
    uninterrupted training; its artefacts are all there."""
    p = tiny_params(tmp_path, epochs_b1=2, epochs_b2=3, patience=10)
    tiny_splits(p, tmp_path)
    code = f"""
        import time, keras, face_report.training as T
        from face_report.training import train_model_b
        from face_report.data import prepare_splits
        def paused(run_dir, tag, *a, **k):  # after the killed phase's first epoch (after its backup), said by a file
            cbs, ckpt = callbacks(run_dir, tag, *a, **k)
            def pause(epoch, logs):
                if PAUSE and tag == {killed_in!r} and epoch == 0: open("paused", "w").close(); time.sleep(600)
            return cbs + [keras.callbacks.LambdaCallback(on_epoch_end=pause)], ckpt
        callbacks, T._callbacks = T._callbacks, paused
        p = {p!r}
        s = prepare_splits(p["data"], p["n_images"], p["val_fraction"], p["test_size"], p["seed"], p["image_size"])
        train_model_b(s, params=p)
    """
    run = Path(p["run_dir"]); hist = run / "history_B.csv"
    kill_when_paused(code.replace("PAUSE", "True"), tmp_path)
    assert pd.read_csv(hist).epoch.tolist() == before and not (run / "model_B.keras").exists()
    code = code.replace("PAUSE", "False")
    done = run_child(code, tmp_path); out, _ = done.communicate(timeout=300)
    assert done.returncode == 0 and "resuming at epoch 2/" in out, out
    h = pd.read_csv(hist)
    assert h.epoch.tolist() == [1, 2, 3, 4, 5] and h.phase.tolist() == [1, 1, 2, 2, 2], h
    for f in ["model_B.keras", "phase1_B.json", "log_B.txt", "predictions/B_val.csv", "predictions/B_test.csv"]:
        assert (run / f).exists(), f
    pred = pd.read_csv(run / "predictions/B_test.csv")
    assert list(pred.columns) == ["file", "age", "gender", "race", "age_pred", "p_female"] and len(pred) == p["test_size"]
    whole = Path(p["run_dir"] + "_whole")  # the same training, not interrupted
    straight = run_child(code.replace(repr(p), repr({**p, "run_dir": str(whole)})), tmp_path); out, _ = straight.communicate(timeout=300)
    assert straight.returncode == 0, out
    pd.testing.assert_frame_equal(h.drop(columns="wall_seconds"), pd.read_csv(whole / "history_B.csv").drop(columns="wall_seconds"), check_exact=True)
    for split in ("val", "test"):
        assert (run / "predictions" / f"B_{split}.csv").read_bytes() == (whole / "predictions" / f"B_{split}.csv").read_bytes()


@pytest.mark.parametrize("epochs, ema_momentum", [(2, 0.0), (2, 0.5), (1, 0.5)])
def test_kill_between_backup_and_best_checkpoint(tmp_path, epochs, ema_momentum):
    """Killed after epoch 1's backup, before its best checkpoint was written: started again, the checkpoint holds the
    weights validated at epoch 1 (with `ema_momentum` the averaged ones), whether training goes on (2 epochs) or not (1)."""
    p = tiny_params(tmp_path, epochs_a=epochs, patience=10, ema_momentum=ema_momentum)
    tiny_splits(p, tmp_path)
    code = f"""
        import os, signal, sys, numpy as np, keras, face_report.training as T
        from face_report.training import resolve_params, train_model_a
        from face_report.data import prepare_splits
        p = {p!r}
        ckpt = T.best_checkpoint(p["run_dir"], "A")
        class Kill(keras.callbacks.Callback):  # runs right after the backup, before the best checkpoint
            def on_epoch_end(self, epoch, logs=None): os.kill(os.getpid(), signal.SIGKILL)
        class Check(keras.callbacks.Callback):  # runs last: the checkpoint must hold the weights validated at epoch 1
            def on_train_begin(self, logs=None):
                opt = self.model.optimizer
                validated = opt._model_variables_moving_average if p["ema_momentum"] else opt._trainable_variables
                want = [keras.ops.convert_to_numpy(v) for v in validated]
                self.model.save_weights(os.path.join(os.getcwd(), "now.weights.h5")); self.model.load_weights(str(ckpt))
                got = [keras.ops.convert_to_numpy(v) for v in opt._trainable_variables]
                print("CHECKPOINT HOLDS EPOCH 1:", len(want) == len(got) > 0 and all(np.array_equal(a, b) for a, b in zip(want, got)))
                self.model.load_weights(os.path.join(os.getcwd(), "now.weights.h5"))
        def wrapped(*a, **k):
            cbs, c = callbacks(*a, **k)
            i = next(i for i, cb in enumerate(cbs) if isinstance(cb, keras.callbacks.BackupAndRestore))
            return (cbs[:i + 1] + [Kill()] + cbs[i + 1:] if sys.argv[1] == "kill" else cbs + [Check()]), c
        callbacks, T._callbacks = T._callbacks, wrapped
        s = prepare_splits(p["data"], p["n_images"], p["val_fraction"], p["test_size"], p["seed"], p["image_size"])
        m = T.train_model_a(s, params=p)
        print("KEPT VAL AGE MAE", m["val"]["age_mae"])
    """
    killed = run_child(code.replace("sys.argv[1]", "'kill'"), tmp_path); out, _ = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, out
    run = Path(p["run_dir"])
    assert pd.read_csv(run / "history_A.csv").epoch.tolist() == [1] and (run / "backup" / "A").exists()
    again = run_child(code.replace("sys.argv[1]", "'check'"), tmp_path); out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    if epochs > 1: assert "CHECKPOINT HOLDS EPOCH 1: True" in out, out
    h = pd.read_csv(run / "history_A.csv")
    assert h.epoch.tolist() == list(range(1, epochs + 1)), h
    kept = float(re.search(r"KEPT VAL AGE MAE (\S+)", out).group(1))
    assert kept == pytest.approx(h.val_age_mae[h.val_loss.idxmin()], rel=1e-4), (kept, h)


@pytest.mark.parametrize("ema_momentum", [0.0, 0.5])
def test_best_epoch_is_the_model_kept(tmp_path, monkeypatch, ema_momentum):
    "The kept model is the one validated at the best epoch, not the last: with `ema_momentum`, the averaged weights."
    import keras, face_report.training as T
    class MiddleBest(keras.callbacks.Callback):  # called first: epoch 2 of 3 validates best
        def on_epoch_end(self, epoch, logs=None): logs["val_loss"] = (3.0, 1.0, 2.0)[epoch]
    callbacks = T._callbacks
    def with_middle_best(*a, **k):
        cbs, ckpt = callbacks(*a, **k)
        return [MiddleBest(), *cbs], ckpt
    monkeypatch.setattr(T, "_callbacks", with_middle_best)
    p = tiny_params(tmp_path, epochs_a=3, lr_a=0.05, patience=10, ema_momentum=ema_momentum)  # a large rate: each epoch's weights differ
    m = train_model_a(tiny_splits(p, tmp_path), params=p)
    h = pd.read_csv(Path(p["run_dir"]) / "history_A.csv")
    assert h.val_loss.tolist() == [3.0, 1.0, 2.0] and len(set(h.val_age_mae.round(4))) == 3, h
    assert m["val"]["age_mae"] == pytest.approx(h.val_age_mae[h.val_loss.idxmin()], rel=1e-4), (m["val"], h)


def test_resumed_phase_counts_earlier_epochs(tmp_path):
    "A phase resumed after epoch 2 of 3 keeps rows 1-2 and their seconds, which `fit_phase` adds to its own."
    from face_report.training import _callbacks, read_history
    rows = [{**dict.fromkeys(HISTORY_COLUMNS, 0.0), "epoch": e, "phase": 1, "wall_seconds": 100.0} for e in (1, 2, 3)]
    pd.DataFrame(rows).to_csv(tmp_path / "history_A.csv", index=False)
    said = []
    cbs, _ = _callbacks(tmp_path, "A", 1, 0, 5, tiny_params(tmp_path), "A", log=said.append)
    history = next(c for c in cbs if type(c).__name__ == "History")
    history.on_train_begin(); history.on_epoch_begin(2)  # restored from the backup taken after epoch 2
    assert history.earlier_seconds == 200.0 and read_history(tmp_path / "history_A.csv").epoch.tolist() == [1, 2]
    assert said == ["A: resuming at epoch 3/5; the 2 finished epoch(s) of an earlier session (0:03:20) and the best weights so far were kept"]


@pytest.mark.parametrize("resumed", [True, False])
def test_phase_2_leaves_phase_1_epochs_alone(tmp_path, resumed):
    """history_B.csv holds phase 1 (epochs 1-3, 100 s each) and phase 2 (epochs 4-5, 50 s each). Phase 2 resumed from its
    backup taken after its first epoch keeps rows 1-4 and counts 50 s; early stopping, the learning-rate schedule and the
    best checkpoint go on from epoch 4's loss, not phase 1's lower ones. Without a backup phase 2 starts from nothing."""
    import keras
    from face_report.training import _callbacks, read_history
    losses = {1: 1.0, 2: 0.5, 3: 0.6, 4: 2.0, 5: 1.5}
    rows = [{**dict.fromkeys(HISTORY_COLUMNS, 1.0), "epoch": e, "phase": 1 if e <= 3 else 2, "val_loss": loss,
             "wall_seconds": 100.0 if e <= 3 else 50.0} for e, loss in losses.items()]
    pd.DataFrame(rows).to_csv(tmp_path / "history_B.csv", index=False)
    if resumed:  # Keras's backup after phase 2's first epoch
        (tmp_path / "backup" / "B_phase2").mkdir(parents=True)
        (tmp_path / "backup" / "B_phase2" / "training_metadata.json").write_text(json.dumps({"epoch": 1, "batch": 0}))
    cbs, ckpt = _callbacks(tmp_path, "B_phase2", 2, 3, 5, tiny_params(tmp_path), "B phase2", log=lambda *_: None)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]); model.compile(keras.optimizers.Adam(1e-3), "mse")
    history, plateau, stop, best = (next(c for c in cbs if type(c).__name__ == n) for n in ("History", "Plateau", "Stop", "Best"))
    for c in (history, plateau, stop, best): c.set_model(model); c.on_train_begin()
    history.on_epoch_begin(1 if resumed else 0)
    kept = read_history(tmp_path / "history_B.csv")
    if resumed:
        assert history.earlier_seconds == 50.0 and kept.epoch.tolist() == [1, 2, 3, 4] and kept.phase.tolist() == [1, 1, 1, 2]
        assert stop.best == plateau.best == best.best == 2.0 and stop.wait == 0 and ckpt.exists()
    else:
        assert history.earlier_seconds == 0.0 and kept.epoch.tolist() == [1, 2, 3]
        assert all(b is None or b == np.inf for b in (stop.best, plateau.best, best.best)) and not ckpt.exists()


def test_wall_seconds_total_is_the_sum_of_the_parts(tmp_path):
    "metrics.json's `wall_seconds.total` sums the models' parts, the earlier total left out, and drops a forgotten model's."
    from face_report.training import _forget, _record, start_run
    p = tiny_params(tmp_path); run = Path(start_run(p))
    _record(run, "A", {}, {"A": 1.0}, p); _record(run, "B", {}, {"B_phase1": 2.0, "B_phase2": 3.5}, p)
    assert json.loads((run / "metrics.json").read_text())["wall_seconds"] == {"A": 1.0, "B_phase1": 2.0, "B_phase2": 3.5, "total": 6.5}
    _record(run, "A", {}, {"A": 1.5}, p)  # re-evaluated or trained again
    assert json.loads((run / "metrics.json").read_text())["wall_seconds"]["total"] == 7.0
    _forget(run, "A")
    assert json.loads((run / "metrics.json").read_text())["wall_seconds"] == {"B_phase1": 2.0, "B_phase2": 3.5, "total": 5.5}
    _forget(run, "B")  # no model left: no metrics.json (its run-wide keys alone say nothing)
    assert not (run / "metrics.json").exists()


def test_fingerprint_follows_every_split(tmp_path):
    "Swapping one image of the test split (or of any other) for an unused one gives another splits fingerprint."
    from face_report.training import splits_fingerprint
    p = tiny_params(tmp_path); s = tiny_splits(p, tmp_path)
    used = {Path(f).name for f in pd.concat(s.frames.values()).path}
    unused = next(f for f in sorted(Path(p["data"]).iterdir()) if f.name not in used)
    for k in ("test", "val", "train"):
        frames = {n: f.copy() for n, f in s.frames.items()}
        frames[k].loc[frames[k].index[0], "path"] = str(unused)
        assert splits_fingerprint(frames) != splits_fingerprint(s), k


def test_nan_loss_stops_with_clear_message(tmp_path):
    p = tiny_params(tmp_path)
    s = tiny_splits(p, tmp_path)
    s.frames["train"] = s.frames["train"].assign(age=np.nan)
    with pytest.raises(TrainingError, match="NaN.*Kept"):
        train_model_a(s, params=p)
    assert (Path(p["run_dir"]) / "params.json").exists() and not (Path(p["run_dir"]) / "model_A.keras").exists()


def test_other_parameters_are_refused(tmp_path):
    p = tiny_params(tmp_path, epochs_a=1)
    s = tiny_splits(p, tmp_path)
    train_model_a(s, params=p)
    with pytest.raises(TrainingError, match=re.escape(f"other parameters (l2: {p['l2']} -> 0.01)")):
        train_model_a(s, params={**p, "l2": 0.01})
    with pytest.raises(TrainingError, match="image_size: 32 in the splits, 48 in the parameters"):
        train_model_a(s, params={**p, "image_size": 48})


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    p = tiny_params(tmp_path, epochs_a=1, strategy="mirrored")
    tiny_splits(p, tmp_path)
    code = f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()]*2)
        from face_report.training import train_model_a, make_strategy
        from face_report.data import prepare_splits
        assert make_strategy("mirrored").num_replicas_in_sync == 2
        p = {p!r}
        s = prepare_splits(p["data"], p["n_images"], p["val_fraction"], p["test_size"], p["seed"], p["image_size"])
        m = train_model_a(s, params=p)
        print("REPLICAS OK", m["val"]["age_mae"])
        import keras, numpy as np  # FusedAdam updates every replica's copy, as Keras's Adam does
        from face_report.models import FusedAdam
        x = np.random.default_rng(0).normal(size=(16, 5)).astype("float32"); kernels = []
        for opt in (keras.optimizers.Adam, FusedAdam):
            keras.utils.set_random_seed(1)
            with make_strategy("mirrored").scope():
                net = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3), keras.layers.Dense(1)]); net.compile(opt(0.05), "mse")
            start = net.layers[0].kernel.numpy()
            net.fit(x, x.sum(1), batch_size=8, epochs=3, verbose=0, shuffle=False)
            kernels.append([k.numpy() for k in make_strategy("mirrored").experimental_local_results(net.layers[0].kernel.value)])
        (a0, a1), (f0, f1) = kernels
        assert np.abs(f0 - f1).max() < 1e-7 and np.abs(f0 - a0).max() < 1e-4 and np.abs(a0 - start).max() > 0.05
        print("FUSED ADAM OK")
    """
    child = run_child(code, tmp_path); out, _ = child.communicate(timeout=300)
    assert child.returncode == 0 and "REPLICAS OK" in out and "FUSED ADAM OK" in out, out
    h = pd.read_csv(Path(p["run_dir"]) / "history_A.csv")
    assert np.isfinite(h[["loss", "val_loss"]].to_numpy()).all()
    recorded = json.loads((Path(p["run_dir"]) / "params.json").read_text())
    assert recorded["replicas"] == 2, recorded  # trained on both logical CPUs, not under the default strategy



def test_stopped_after_training_keeps_the_trained_phase(tmp_path):
    "Stopped after its last epoch but before the model was kept: started again, the phase is not trained again."
    p = tiny_params(tmp_path, epochs_a=2)
    s = tiny_splits(p, tmp_path)
    first = train_model_a(s, params=p)
    run = Path(p["run_dir"])
    history = pd.read_csv(run / "history_A.csv")
    metrics = json.loads((run / "metrics.json").read_text()); metrics.pop("A")
    (run / "metrics.json").write_text(json.dumps(metrics)); (run / "model_A.keras").unlink()
    said = []
    again = train_model_a(s, params=p, log=said.append)
    assert any(l.startswith("A: trained in an earlier session (2 epochs, best ") for l in said), said
    assert not any(" epoch 1/2 " in l for l in said), said
    pd.testing.assert_frame_equal(pd.read_csv(run / "history_A.csv"), history)
    assert again == first and (run / "model_A.keras").exists()
    assert json.loads((run / "metrics.json").read_text())["wall_seconds"]["A"] == pytest.approx(history.wall_seconds.sum(), abs=0.1)


@pytest.mark.parametrize("kept", [3, 5, 6, 8, 10])
def test_resumed_lr_schedule_continues(tmp_path, kept):
    "After a resume the learning-rate schedule has the state it had after the restored epoch, as Keras stepped it."
    import keras
    from face_report.training import _callbacks
    losses = [3.0, 2.0, 2.05, 2.1, 2.0, 1.9, 1.95, 1.96, 1.97, 1.5]
    p = tiny_params(tmp_path, lr_patience=2, lr_factor=0.5, min_lr=1e-7)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]); model.compile(keras.optimizers.Adam(1e-3), "mse")
    keras_own = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-7)
    keras_own.set_model(model); keras_own.on_train_begin()
    rows = []
    for epoch, loss in enumerate(losses[:kept]):
        rows.append({**dict.fromkeys(HISTORY_COLUMNS, 1.0), "epoch": epoch + 1, "phase": 1, "val_loss": loss,
                     "lr": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))})
        keras_own.on_epoch_end(epoch, {"val_loss": loss})
    pd.DataFrame(rows + [{**rows[-1], "epoch": kept + 1}]).to_csv(tmp_path / "history_A.csv", index=False)  # one row after the backup
    (tmp_path / "backup" / "A").mkdir(parents=True)
    (tmp_path / "backup" / "A" / "training_metadata.json").write_text(json.dumps({"epoch": kept, "batch": 0}))
    cbs, _ = _callbacks(tmp_path, "A", 1, 0, 20, p, "A", log=lambda *_: None)
    resumed = next(c for c in cbs if isinstance(c, keras.callbacks.ReduceLROnPlateau))
    resumed.set_model(model); resumed.on_train_begin()
    assert (resumed.wait, resumed.best, resumed.cooldown_counter) == (keras_own.wait, keras_own.best, keras_own.cooldown_counter)
    stop = next(c for c in cbs if isinstance(c, keras.callbacks.EarlyStopping))
    stop.set_model(model); stop.on_train_begin()
    assert stop.best == min(losses[:kept]) and stop.wait == kept - 1 - int(np.argmin(losses[:kept]))


def test_retrain_never_leaves_models_of_two_runs(tmp_path):
    "Retraining one model with other parameters removes the other model too; with the same parameters only the one."
    from face_report.training import forget_models, start_run
    p = tiny_params(tmp_path)
    run = Path(start_run(p))
    def fake_models():
        for t in "AB":
            (run / f"model_{t}.keras").write_bytes(b"weights"); (run / f"history_{t}.csv").write_text("epoch\n1\n")
        (run / "metrics.json").write_text(json.dumps({"A": {"val": {}}, "B": {"val": {}}, "wall_seconds": {"A": 1, "B_phase1": 2, "B_phase2": 3, "total": 6}}))
    fake_models(); said = []
    assert forget_models(p, "A", log=said.append) == "A"
    assert not (run / "model_A.keras").exists() and (run / "model_B.keras").exists() and (run / "params.json").exists()
    assert json.loads((run / "metrics.json").read_text()) == {"B": {"val": {}}, "wall_seconds": {"B_phase1": 2, "B_phase2": 3, "total": 5}}
    assert said == [f"retrain: removed Model A from {run}"]
    fake_models(); said = []
    assert forget_models({**p, "l2": 0.01}, "A", log=said.append) == "AB"
    assert not any(run.glob("model_*.keras")) and not (run / "params.json").exists() and not (run / "metrics.json").exists()
    assert said == [f"retrain: removed Model A and B from {run} (trained with other parameters or on other images)"]
    assert forget_models(p, "AB") == "" and forget_models({**p, "run_dir": str(tmp_path / "none")}) == ""
    fake_models(); (run / "params.json").write_text("{bad")  # damaged: the run is unknown, so retrain removes both models
    assert forget_models(p, "A", log=said.append) == "AB" and not any(run.glob("model_*.keras")) and not (run / "params.json").exists()


def test_retrain_refuses_a_model_another_process_trains(tmp_path):
    "Retrain takes the training lock of each model it removes: one that another process is training is left as it is."
    from face_report.training import forget_models, start_run, training_lock, TrainingError
    p = tiny_params(tmp_path)
    run = Path(start_run(p))
    for t in "AB": (run / f"history_{t}.csv").write_text("epoch\n1\n")
    with training_lock(run, "B"):  # (flock: a second open file description is a second holder, as another process is)
        with pytest.raises(TrainingError, match="another process is training Model B"):
            forget_models({**p, "l2": 0.01}, "A")  # other parameters: both models would go
        assert (run / "history_A.csv").exists() and (run / "history_B.csv").exists() and (run / "params.json").exists()
        assert forget_models(p, "A") == "A" and (run / "history_B.csv").exists()  # Model A alone: not B's lock
    with training_lock(run, "A"): assert forget_models(p, "A", held="A") == ""  # the caller's own lock


def _fake_rows(epochs):
    return pd.DataFrame([{**dict.fromkeys(HISTORY_COLUMNS, 1.0), "epoch": e, "phase": 1, "val_loss": 5.0 - e} for e in epochs])


@pytest.mark.parametrize("case", ["cut_short_first_backup", "backup_gone", "history_short"])
def test_backup_and_history_that_disagree_start_the_phase_again(tmp_path, case):
    "A backup cut short at epoch 1, a deleted backup, or a history shorter than the backup: said, and the phase starts again."
    from face_report.training import start_run
    p = tiny_params(tmp_path, epochs_a=2)
    s = tiny_splits(p, tmp_path)
    run = Path(start_run(p)); backup = run / "backup" / "A"
    _fake_rows([1, 2] if case == "backup_gone" else [1]).to_csv(run / "history_A.csv", index=False)
    if case != "backup_gone":
        backup.mkdir(parents=True); (backup / "latest.weights.h5").write_bytes(b"\x89HDF\r\n" + bytes(90))  # 96 bytes, cut short
    if case == "history_short": (backup / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    said = []
    train_model_a(s, params=p, log=said.append)
    why = {"cut_short_first_backup": f"A: its backup {backup} has no readable training_metadata.json",
           "backup_gone": "A: history_A.csv lists 2 finished epoch(s) that no backup holds",
           "history_short": "A: its backup holds 2 finished epoch(s), but history_A.csv lists 1 of them"}[case]
    assert any(l.startswith(why) and l.endswith("the phase starts again at epoch 1") for l in said), said
    h = pd.read_csv(run / "history_A.csv")
    assert h.epoch.tolist() == [1, 2] and (h.val_loss != 3.0).all(), h  # trained again, the fake rows replaced


def test_run_folder_that_lost_a_file(tmp_path):
    "A finished run without params.json is refused; without a history, named; a model file cut short is made again."
    p = tiny_params(tmp_path)
    s = tiny_splits(p, tmp_path)
    first = train_model_a(s, params=p)
    run = Path(p["run_dir"])
    model = run / "model_A.keras"; model.write_bytes(model.read_bytes()[:2000])  # cut short
    said = []
    assert train_model_a(s, params=p, log=said.append) == first
    assert any("model_A.keras is not a readable .keras file; it is made again from the best weights" in l for l in said), said
    import zipfile; assert zipfile.is_zipfile(model)
    (run / "history_A.csv").rename(run / "history_A.kept")
    with pytest.raises(TrainingError, match=r"history_A.csv is missing: Model A's epochs are unknown"): train_model_a(s, params=p)
    (run / "history_A.kept").rename(run / "history_A.csv"); (run / "params.json").unlink()
    with pytest.raises(TrainingError, match=r"holds model_A.keras, history_A.csv, metrics.json but no params.json"):
        train_model_a(s, params={**p, "lr_a": 1e-3})
    assert not (run / "params.json").exists()


def test_resumed_epoch_trains_at_the_cut_learning_rate(tmp_path):
    """Killed in the first batch after ReduceLROnPlateau halved the rate: the resumed epoch trains at the halved rate (the
    backup, taken after the cut, holds it with the optimizer)."""
    p = tiny_params(tmp_path, epochs_a=3, patience=10, lr_patience=1, lr_factor=0.5)
    tiny_splits(p, tmp_path)
    code = f"""
        import os, signal, keras, face_report.training as T
        from face_report.data import prepare_splits
        p = {p!r}
        class Worse(keras.callbacks.Callback):  # called first: each epoch validates worse than the one before
            def on_epoch_end(self, epoch, logs=None): logs["val_loss"] = 1.0 + epoch
        class Kill(keras.callbacks.Callback):  # the first batch at the cut rate
            def on_train_batch_begin(self, batch, logs=None):
                if float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)) < 0.75*p["lr_a"]: os.kill(os.getpid(), signal.SIGKILL)
        def wrapped(*a, **k):
            cbs, c = callbacks(*a, **k)
            return [Worse(), *cbs, *([Kill()] if MODE == "kill" else [])], c
        callbacks, T._callbacks = T._callbacks, wrapped
        s = prepare_splits(p["data"], p["n_images"], p["val_fraction"], p["test_size"], p["seed"], p["image_size"])
        T.train_model_a(s, params=p)
    """
    killed = run_child(code.replace("MODE", "'kill'"), tmp_path); out, _ = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, out
    history = Path(p["run_dir"]) / "history_A.csv"
    assert pd.read_csv(history).epoch.tolist() == [1, 2], out
    again = run_child(code.replace("MODE", "'go on'"), tmp_path); out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    assert pd.read_csv(history).lr.tolist() == pytest.approx([p["lr_a"], p["lr_a"], p["lr_a"] / 2]), out


def test_history_without_phase_1_rows_is_refused(tmp_path):
    "A history_B.csv that lost phase 1's rows, while phase1_B.json says phase 1 trained, is refused before phase 2 trains on."
    from face_report.training import train_model_b
    p = tiny_params(tmp_path, epochs_b1=1, epochs_b2=1)
    s = tiny_splits(p, tmp_path)
    train_model_b(s, params=p)
    run = Path(p["run_dir"])
    for f in ("model_B.keras", "metrics.json", "checkpoints/B_phase2_best.weights.h5"): (run / f).unlink()
    h = pd.read_csv(run / "history_B.csv"); h[h.phase == 2].to_csv(run / "history_B.csv", index=False)
    with pytest.raises(TrainingError, match=r"history_B.csv lists 0 epoch\(s\) of phase 1, but phase1_B.json says phase 1 trained 1"):
        train_model_b(s, params=p)


def test_infinite_loss_is_said_as_such(tmp_path):
    p = tiny_params(tmp_path)
    s = tiny_splits(p, tmp_path)
    with pytest.raises(TrainingError, match="the loss became infinite; training stopped"):  # 1e38 x an MAE of years overflows float32
        train_model_a(s, params={**p, "age_weight_a": 1e38})

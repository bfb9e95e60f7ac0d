"""The benchmark harness (benchmarks/harness.py) on tiny settings: seeds x recipes x methods, mean +- std."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from training_fixtures import easy_images

HARNESS = Path(__file__).resolve().parents[1] / "benchmarks" / "harness.py"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("bench_harness", HARNESS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_aggregate_gives_mean_std_and_the_reduction_per_recipe(harness):
    def rec(method, seed, acc, ops):
        return {"recipe": "paper", "method": method, "seed": seed, "path": "host", "test_accuracy": acc,
                "cell_ops_per_step": ops}  # fmt: skip

    agg = harness.aggregate([rec("to", 0, 0.8, 10), rec("to", 1, 0.9, 30), rec("wo", 0, 0.5, 1000)])
    assert agg["paper/to"]["test_accuracy"]["mean"] == pytest.approx(0.85)
    assert agg["paper/to"]["test_accuracy"]["std"] == pytest.approx(0.0707, abs=1e-4)
    assert agg["paper/to"]["ops_reduction_vs_wo"] == pytest.approx(0.98)
    assert agg["paper/wo"]["seeds"] == [0]


@pytest.mark.slow
def test_harness_runs_every_seed_recipe_and_method(harness, tmp_path, monkeypatch):
    easy = easy_images(n_train=120, n_test=40)
    monkeypatch.setattr(harness, "load_task_data", lambda *a, **k: easy)
    res = harness.main("fmnist-cnn", ["--epochs", "1", "--seeds", "0", "1", "--backend", "software",
                                      "--out", str(tmp_path), "--set", "optimiser.batch_size=60"])  # fmt: skip
    runs = res["runs"]
    assert {(r["recipe"], r["method"], r["seed"]) for r in runs} == {
        (rc, m, s) for rc in ("rramctl", "paper") for m in ("to", "wo") for s in (0, 1)
    }
    assert all(r["batch_size"] == 60 and r["split"]["validation"] == 10 for r in runs)
    for r in runs:
        if r["method"] == "to":  # every pair flip is a reset or set of both cells
            assert r["cell_ops"] == 2 * r["pair_flips"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["summary"]) == {"rramctl/to", "rramctl/wo", "paper/to", "paper/wo"}
    assert "host products" in saved["summary"]["paper/to"]["path"]
    assert (tmp_path / "accuracy_spread.png").stat().st_size > 0
    assert "| paper/to (seeds 0, 1) |" in harness.table("fmnist-cnn", saved["summary"])


def test_harness_without_validation_records_no_best_on_validation(harness, tmp_path, monkeypatch):
    """--set data.validation=0: every training sample trains; no best-val figures, no validation curve."""
    easy = easy_images(n_train=60, n_test=20)
    monkeypatch.setattr(harness, "load_task_data", lambda *a, **k: easy)
    res = harness.main("fmnist-cnn", ["--epochs", "1", "--seeds", "0", "--recipes", "rramctl", "--backend",
                                      "software", "--out", str(tmp_path), "--set", "optimiser.batch_size=30",
                                      "--set", "data.validation=0", "--set", "threshold.t_epochs=[1]"])  # fmt: skip
    best = {"best_val_epoch", "best_val_accuracy", "test_at_best_val"}
    assert [r["method"] for r in res["runs"]] == ["to", "wo"]
    for r in res["runs"]:
        assert r["split"]["validation"] == 0 and r["split"]["train"] == 60 and not best & set(r)
    for d in res["summary"].values():
        assert not best & set(d) and "test_accuracy" in d
    merged = harness.merge_parts("fmnist-cnn", [tmp_path])
    assert all("val_accuracy_curve" not in r and len(r["test_accuracy_curve"]) == 1 for r in merged["runs"])
    assert "| rramctl/to (seeds 0) |" in harness.table("fmnist-cnn", res["summary"])
    assert "| no validation |" in harness.table("fmnist-cnn", res["summary"])
    assert (tmp_path / "accuracy_spread.png").stat().st_size > 0


def test_merge_keeps_each_command_and_counts_pair_flips_after_the_initial_prune(tmp_path, monkeypatch):
    """benchmarks/train_fsdd_crnn.py --merge: invocations run side by side become one results file."""
    monkeypatch.syspath_prepend(str(HARNESS.parent))
    spec = importlib.util.spec_from_file_location("bench_fsdd", HARNESS.parent / "train_fsdd_crnn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for folder, method, flips in (("a", "to", 34_240 + 600), ("b", "wo", 0)):
        (tmp_path / folder / f"paper-{method}-seed0").mkdir(parents=True)
        metrics = [{"val_accuracy": 0.5, "test_accuracy": 0.4, "pair_flips_epoch": flips // 2}] * 2
        (tmp_path / folder / f"paper-{method}-seed0" / "metrics.json").write_text(json.dumps(metrics))
        run = {
            "recipe": "paper",
            "method": method,
            "seed": 0,
            "path": "host",
            "epochs": 2,
            "steps": 6,
            "test_accuracy": 0.4,
            "pair_flips": flips,
            "cell_ops_per_step": 2 * flips / 6 if flips else 900.0,
        }
        (tmp_path / folder / "results.json").write_text(json.dumps({"data": "f.npz", "args": {"out": folder},
                                                                     "runs": [run]}))  # fmt: skip
    res = mod.merge(tmp_path / "out.json", [tmp_path / "a", tmp_path / "b"])
    assert set(res["commands"]) == {str(tmp_path / "a"), str(tmp_path / "b")}
    to = res["summary"]["paper/to"]
    assert to["pair_flips_after_initial_prune_per_epoch"]["mean"] == 300 and to["epochs"] == [2]
    assert res["runs"][0]["test_accuracy_curve"] == [0.4, 0.4]
    assert to["ops_reduction_vs_wo"] == pytest.approx(1 - (2 * 34_840 / 6) / 900)
    assert json.loads((tmp_path / "out.json").read_text())["summary"] == res["summary"]


def test_sweep_keeps_the_first_run_of_a_seed_and_the_validation_figures_that_decide(tmp_path, harness):
    """harness.sweep (``--sweep`` of both task scripts): per setting, one run per seed, validation final / last-k."""
    for folder, seeds, val in (("a", (0,), 0.6), ("b", (0, 1), 0.8)):
        runs = []
        for seed in seeds:
            run_dir = tmp_path / folder / f"rramctl-to-seed{seed}"
            run_dir.mkdir(parents=True)
            metrics = [{"val_accuracy": 0.5, "test_accuracy": 0.4, "val_loss": 1.0},
                       {"val_accuracy": val, "test_accuracy": 0.7, "val_loss": 0.5}]  # fmt: skip
            (run_dir / "metrics.json").write_text(json.dumps(metrics))
            runs.append({"recipe": "rramctl", "method": "to", "seed": seed, "path": "host", "epochs": 2, "steps": 4,
                         "test_accuracy": 0.7, "best_val_accuracy": val, "test_at_best_val": 0.7,
                         "pair_flips": 1_000 + 200, "cell_ops_per_step": 1.0})  # fmt: skip
        (tmp_path / folder / "results.json").write_text(json.dumps({"data": "d", "args": {"out": folder},
                                                                     "runs": runs}))  # fmt: skip
    res = harness.sweep("fmnist-cnn", tmp_path / "s.json", {"x": [tmp_path / "a", tmp_path / "b"]}, 1_000, last=2)
    sm = res["settings"]["x"]["summary"]
    assert sm["seeds"] == [0, 1]  # seed 0 from folder a (the first), seed 1 from b
    assert sm["val_final"]["mean"] == pytest.approx((0.6 + 0.8) / 2)
    assert sm["val_mean_last_2"]["mean"] == pytest.approx(((0.5 + 0.6) / 2 + (0.5 + 0.8) / 2) / 2)
    assert sm["pair_flips_after_initial_prune_per_epoch"]["mean"] == 100
    assert res["paper"] == 0.874 and json.loads((tmp_path / "s.json").read_text())["settings"]["x"]["summary"] == sm


def _sweep_run(folder: Path, seed: int, val: list[float], best: list[bool], flips: int, threshold: dict) -> dict:
    run_dir = folder / f"rramctl-to-seed{seed}"
    run_dir.mkdir(parents=True)
    metrics = [{"epoch": e + 1, "val_accuracy": v, "test_accuracy": 0.5, "val_loss": 1.0, "new_best": b}
               for e, (v, b) in enumerate(zip(val, best, strict=True))]  # fmt: skip
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "config.json").write_text(json.dumps({"threshold": threshold}))
    return {"recipe": "rramctl", "method": "to", "seed": seed, "path": "host", "epochs": len(val), "steps": 8,
            "test_accuracy": 0.5, "best_val_accuracy": max(val), "test_at_best_val": 0.5, "pair_flips": flips,
            "cell_ops_per_step": 1.0}  # fmt: skip


def test_sweep_replays_the_counter_and_applies_the_budget_rule(tmp_path, harness):
    """t_epochs_replay: per k the median over seeds of the epoch of the k-th new best, no more entries than the fewest
    a run had nor than the steps to T_s's floor; the budget rule: validation >= the reference's mean - std, flips <=
    the budget, fewest flips wins; the reference competes unless told not to."""
    th = {"init": 5e-3, "end": 5e-4, "step": 1.5e-3, "floor": True}  # 3 steps to the floor
    courses = {  # seed -> epochs with a new best
        0: [True, True, False, True, True, True],  # 1, 2, 4, 5, 6
        1: [True, False, True, False, True, False],  # 1, 3, 5
        2: [True, True, True, True, False, False],  # 1, 2, 3, 4
    }
    figures = {"ref": ([0.8, 0.9], 2_000), "few": ([0.8, 0.88], 1_300), "fewest": ([0.7, 0.7], 1_100),
               "many": ([0.9, 0.95], 9_000)}  # fmt: skip
    for label, (last, flips) in figures.items():
        runs = [_sweep_run(tmp_path / label, seed, [0.5, 0.6, 0.7, 0.8] + [last[seed % 2]] * 2, best,
                           1_000 + flips * 6, th)
                for seed, best in courses.items()]  # fmt: skip
        (tmp_path / label / "results.json").write_text(json.dumps({"data": "d", "args": {}, "runs": runs}))
    settings = {label: [tmp_path / label] for label in figures}
    rule = harness.BudgetRule("ref", budget=5_000)
    res = harness.sweep("fsdd-crnn", tmp_path / "s.json", settings, 1_000, last=2, rule=rule)
    assert res["settings"]["ref"]["summary"]["t_epochs_replay"] == [1, 2, 4]  # medians of (1,1,1), (2,3,2), (4,5,3)
    dec = res["rule"]
    assert dec["candidates"]["fewest"]["validation_passes"] is False  # 0.7 < ref's mean - std
    assert dec["candidates"]["many"]["budget_passes"] is False
    assert dec["chosen"] == "few" and "few chosen" in dec["decision"]
    assert json.loads((tmp_path / "s.json").read_text())["rule"]["chosen"] == "few"
    with pytest.raises(ValueError, match="not a setting"):
        harness.apply_budget_rule(res, harness.BudgetRule("nope", 5_000), last=2)
    alone = {"settings": {"ref": res["settings"]["ref"]}}
    alone = harness.apply_budget_rule(alone, harness.BudgetRule("ref", 5_000, reference_competes=False), last=2)
    assert alone["chosen"] is None and "none passes" in alone["decision"]


def test_sweep_applies_the_ahead_on_both_rule(tmp_path, harness):
    """The defaults' rule: ahead of the reference on both validation figures (final epoch, mean of the last epochs),
    then the highest mean of the two; within the tie, the higher last-epochs figure; none ahead: the default stays."""
    th = {"init": 5e-3, "end": 5e-4, "step": 5e-4, "floor": True}
    curves = {  # label -> the validation curve of every seed: (final, mean of the last 2)
        "ref": [0.80, 0.90],  # 0.90, 0.85
        "final-only": [0.70, 0.95],  # 0.95, 0.825: behind over the last 2
        "steady": [0.91, 0.92],  # 0.92, 0.915: mean 0.9175
        "sharp": [0.88, 0.955],  # 0.955, 0.9175: mean 0.93625
        "sharper": [0.872, 0.958],  # 0.958, 0.915: mean 0.9365 (within the tie of sharp, lower last-2)
    }
    for label, val in curves.items():
        runs = [_sweep_run(tmp_path / label, seed, [0.5] + val, [True, True, False], 2_000, th) for seed in range(2)]
        (tmp_path / label / "results.json").write_text(json.dumps({"data": "d", "args": {}, "runs": runs}))
    settings = {label: [tmp_path / label] for label in curves}
    res = harness.sweep("fsdd-crnn", tmp_path / "s.json", settings, 1_000, last=2, rule=harness.AheadRule("ref"))
    dec = res["rule"]
    assert dec["candidates"]["final-only"]["ahead_on_both"] is False
    assert all(dec["candidates"][k]["ahead_on_both"] for k in ("steady", "sharp", "sharper"))
    assert dec["chosen"] == "sharp" and "sharp chosen" in dec["decision"]  # sharper's mean is within 0.1 point
    strict = harness.apply_ahead_rule(res, harness.AheadRule("ref", tie=0.0), last=2)
    assert strict["chosen"] == "sharper"
    behind = {"settings": {k: res["settings"][k] for k in ("ref", "final-only")}}
    none = harness.apply_ahead_rule(behind, harness.AheadRule("ref"), last=2)
    assert none["chosen"] is None and "ref stays" in none["decision"]
    with pytest.raises(ValueError, match="not a setting"):
        harness.apply_ahead_rule(res, harness.AheadRule("nope"), last=2)
    assert json.loads((tmp_path / "s.json").read_text())["rule"]["chosen"] == "sharp"


def test_sweep_applies_the_margin_rule(tmp_path, harness):
    """The threshold sweeps' rule: validation (last epochs) above the reference's mean + std, flips within the budget,
    the highest validation of those; none: the default stays."""
    th = {"init": 5e-3, "end": 5e-4, "step": 5e-4, "floor": True}
    curves = {  # label -> (last-2 validation of seeds 0 and 1, pair flips per epoch)
        "ref": ((0.80, 0.90), 2_000),  # mean 0.85, std 0.0707: bar 0.9207
        "near": ((0.90, 0.93), 2_000),  # 0.915: not above the bar
        "over": ((0.95, 0.96), 9_000),  # above, over the budget
        "good": ((0.92, 0.93), 3_000),  # 0.925
        "better": ((0.93, 0.94), 4_000),  # 0.935: chosen
    }
    for label, (vals, flips) in curves.items():
        runs = [_sweep_run(tmp_path / label, seed, [0.5, v, v], [True, True, False], 1_000 + flips * 3, th)
                for seed, v in enumerate(vals)]  # fmt: skip
        (tmp_path / label / "results.json").write_text(json.dumps({"data": "d", "args": {}, "runs": runs}))
    settings = {label: [tmp_path / label] for label in curves}
    rule = harness.MarginRule("ref", budget=5_000)
    res = harness.sweep("fsdd-crnn", tmp_path / "s.json", settings, 1_000, last=2, rule=rule)
    dec = res["rule"]
    assert dec["validation_bar"] == pytest.approx(0.85 + 0.1 / 2**0.5)
    assert not dec["candidates"]["near"]["validation_passes"] and not dec["candidates"]["over"]["budget_passes"]
    assert dec["chosen"] == "better" and "ref" not in dec["candidates"]
    none = harness.apply_rule({"settings": {k: res["settings"][k] for k in ("ref", "near")}}, rule, last=2)
    assert none["chosen"] is None and "ref stays" in none["decision"]


def test_sweep_reads_a_setting_from_a_merged_results_file(tmp_path, harness):
    """A setting given as a ``--merge`` results file (runs kept in benchmarks/results/, their folders gone): the same
    validation figures, flips, decision and counter replay (from the validation curves) as from the folders it was
    merged from; no loss curve; a file
    that is not a merged results file, or a record without a validation curve, is one RunFolderError."""
    th = {"init": 5e-3, "end": 5e-4, "step": 5e-4, "floor": True}
    curves = {"ref": ((0.80, 0.90), 2_000), "better": ((0.93, 0.94), 4_000)}
    for label, (vals, flips) in curves.items():
        runs = [_sweep_run(tmp_path / label, seed, [0.5, v, v], [True, True, False], 1_000 + flips * 3, th)
                for seed, v in enumerate(vals)]  # fmt: skip
        (tmp_path / label / "results.json").write_text(json.dumps({"data": "d", "args": {}, "runs": runs}))
    merged = harness.merge_parts("fsdd-crnn", [tmp_path / "ref"])
    (tmp_path / "ref.json").write_text(json.dumps(merged))
    rule = harness.MarginRule("ref", budget=5_000)
    folders = harness.sweep("fsdd-crnn", tmp_path / "a.json", {k: [tmp_path / k] for k in curves}, 1_000, 2, rule=rule)
    shutil.rmtree(tmp_path / "ref")  # the runs' folders are gone; their merged file is kept
    settings = {"ref": [tmp_path / "ref.json"], "better": [tmp_path / "better"]}
    kept = harness.sweep("fsdd-crnn", tmp_path / "b.json", settings, 1_000, last=2, rule=rule)
    assert kept["rule"] == folders["rule"] and kept["rule"]["chosen"] == "better"
    ref = kept["settings"]["ref"]
    assert ref["results_file"] == str(tmp_path / "ref.json")
    assert ref["summary"]["t_epochs_replay"] == folders["settings"]["ref"]["summary"]["t_epochs_replay"] == [1, 2]
    for key in ("val_final", "val_mean_last_2", "pair_flips_after_initial_prune_per_epoch"):
        assert ref["summary"][key] == folders["settings"]["ref"]["summary"][key]
    assert all("val_loss_mean_last" not in r for r in ref["runs"])
    (tmp_path / "bad.json").write_text(json.dumps({"runs": []}))
    with pytest.raises(harness.RunFolderError, match="not a merged results file"):
        harness.sweep("fsdd-crnn", tmp_path / "c.json", {"ref": [tmp_path / "bad.json"]}, 1_000)
    del merged["runs"][0]["val_accuracy_curve"]
    (tmp_path / "bad.json").write_text(json.dumps(merged))
    with pytest.raises(harness.RunFolderError, match="lacks \\['val_accuracy_curve'\\]"):
        harness.sweep("fsdd-crnn", tmp_path / "c.json", {"ref": [tmp_path / "bad.json"]}, 1_000)
    assert not (tmp_path / "c.json").exists()


def test_sweep_cli_pairs_the_reference_with_one_rule(tmp_path, harness):
    """``--sweep``: --reference with --budget (and --margin) or --ahead, never alone nor with both."""
    both = ["--reference", "a", "--ahead", "--budget", "5"]
    for extra in (["--reference", "a"], ["--budget", "5"], ["--ahead"], both, ["--reference", "a", "--margin"],
                  ["--reference", "a", "--budget", "5", "--margin", "--reference-out"]):  # fmt: skip
        argv = ["o.json", "a=x", *extra]
        with pytest.raises(SystemExit):
            harness.sweep_cli("fsdd-crnn", argv, 1_000)


def test_a_folder_that_is_not_a_harness_folder_is_one_clear_error(tmp_path, harness, capsys):
    """--merge / --sweep on no folder, a missing one, a malformed results.json or a run without metrics: one
    RunFolderError naming the file (the scripts print it as one line), nothing written."""
    with pytest.raises(harness.RunFolderError, match="no run folder"):
        harness.merge_parts("fsdd-crnn", [])
    with pytest.raises(harness.RunFolderError, match="results.json: not a readable"):
        harness.merge_parts("fsdd-crnn", [tmp_path / "missing"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text("{not json")
    with pytest.raises(harness.RunFolderError, match="not a readable harness results file"):
        harness.merge_parts("fsdd-crnn", [bad])
    (bad / "results.json").write_text(json.dumps({"runs": []}))
    with pytest.raises(harness.RunFolderError, match="not a harness results file"):
        harness.merge_parts("fsdd-crnn", [bad])
    run = {"recipe": "rramctl", "method": "to", "seed": 0}
    (bad / "results.json").write_text(json.dumps({"data": "d", "args": {}, "runs": [run]}))
    with pytest.raises(harness.RunFolderError, match="metrics.json: not a readable run metrics file"):
        harness.merge_parts("fsdd-crnn", [bad])
    with pytest.raises(SystemExit):
        harness.sweep_cli("fsdd-crnn", [str(tmp_path / "s.json"), f"a={bad}"], 1_000)
    assert "metrics.json" in capsys.readouterr().err and not (tmp_path / "s.json").exists()


def test_t_epochs_replay_needs_a_counter(tmp_path, harness):
    """Runs without validation (no new_best) have nothing to replay."""
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps([{"epoch": 1, "new_best": None}]))
    assert harness.t_epochs_replay([run_dir]) is None


def _harness_folder(folder: Path, seed: int, data: str = "d") -> None:
    """A harness folder of one rramctl TO run of ``seed`` without validation (two epochs)."""
    (folder / f"rramctl-to-seed{seed}").mkdir(parents=True)
    metrics = [{"val_accuracy": None, "test_accuracy": 0.5 + seed / 100}] * 2
    (folder / f"rramctl-to-seed{seed}" / "metrics.json").write_text(json.dumps(metrics))
    run = {"recipe": "rramctl", "method": "to", "seed": seed, "path": "chip", "epochs": 2, "steps": 4,
           "test_accuracy": 0.5 + seed / 100, "pair_flips": 10, "cell_ops_per_step": 5.0}  # fmt: skip
    (folder / "results.json").write_text(json.dumps({"data": data, "args": {"out": str(folder)}, "runs": [run]}))


def test_merge_takes_results_files_of_seeds_run_in_other_sessions(tmp_path, harness):
    """--merge OUT SEED0.json FOLDER: a seed merged into a results file earlier (its folder gone) and a seed's
    folder become one file over both seeds, each record as it was; its command kept."""
    _harness_folder(tmp_path / "s0", 0)
    _harness_folder(tmp_path / "s1", 1)
    first = harness.merge_parts("fmnist-cnn", [tmp_path / "s0"])
    kept = tmp_path / "seed0.json"
    kept.write_text(json.dumps(first))
    shutil.rmtree(tmp_path / "s0")  # the run folder did not survive
    res = harness.merge_parts("fmnist-cnn", [kept, tmp_path / "s1"])
    assert [r["seed"] for r in res["runs"]] == [0, 1]
    assert res["runs"][0]["results_file"] == str(kept) and res["runs"][0]["test_accuracy_curve"] == [0.5, 0.5]
    assert set(res["commands"]) == {str(tmp_path / "s0"), str(tmp_path / "s1")}
    assert res["summary"]["rramctl/to"]["seeds"] == [0, 1]
    assert res["summary"]["rramctl/to"]["test_accuracy"]["mean"] == pytest.approx(0.505)


def test_merge_refuses_a_run_twice_another_task_or_other_data(tmp_path, harness):
    """The same seed in two parts, a results file of the other task or one of other data: one RunFolderError
    naming the file; a file that is not a results file too."""
    _harness_folder(tmp_path / "s0", 0)
    _harness_folder(tmp_path / "s0b", 0)
    _harness_folder(tmp_path / "s1", 1, data="other")
    with pytest.raises(harness.RunFolderError, match="rramctl/to/0 is in"):
        harness.merge_parts("fmnist-cnn", [tmp_path / "s0", tmp_path / "s0b"])
    assert len(harness.merge_parts("fmnist-cnn", [tmp_path / "s0", tmp_path / "s0b"], unique=False)["runs"]) == 2
    with pytest.raises(harness.RunFolderError, match="data 'other'"):
        harness.merge_parts("fmnist-cnn", [tmp_path / "s0", tmp_path / "s1"])
    spoken = tmp_path / "spoken.json"
    spoken.write_text(json.dumps(harness.merge_parts("fsdd-crnn", [tmp_path / "s0"])))
    with pytest.raises(harness.RunFolderError, match="of fsdd-crnn, not of fmnist-cnn"):
        harness.merge_parts("fmnist-cnn", [spoken])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"runs": []}))
    with pytest.raises(harness.RunFolderError, match="not a merged results file"):
        harness.merge_parts("fmnist-cnn", [bad])
    bad.write_text(json.dumps({"task": "fmnist-cnn", "data": "d", "commands": {}, "runs": [{"seed": 0}]}))
    with pytest.raises(harness.RunFolderError, match="lacks"):
        harness.merge_parts("fmnist-cnn", [bad])


def test_the_counter_replay_of_a_results_file_reads_curves_and_the_commands_settings(harness):
    """t_epochs_replay_of_records: new bests from the validation curves (strictly above every earlier value), the
    median over runs, cut at the steps to T_s's floor of the recipe's defaults with the command's --set values;
    a record without a curve or without its command: None."""
    commands = {"r/a": {"assignments": "[]"}, "r/b": {"assignments": "['threshold.step=0.0025']"}}
    runs = [{"recipe": "rramctl", "run_folder": f"r/a/rramctl-to-seed{s}", "val_accuracy_curve": c}
            for s, c in enumerate(([0.5, 0.6, 0.6, 0.7], [0.5, 0.4, 0.6, 0.8], [0.1, 0.2, 0.3, 0.4]))]  # fmt: skip
    assert harness.t_epochs_replay_of_records("fmnist-cnn", commands, runs) == [1, 2, 4]
    capped = [dict(r, run_folder=r["run_folder"].replace("r/a", "r/b")) for r in runs]
    assert harness.t_epochs_replay_of_records("fmnist-cnn", commands, capped) == [1, 2]  # (5e-3 - 5e-4) / 2.5e-3
    assert harness.t_epochs_replay_of_records("fmnist-cnn", {}, runs) is None
    assert harness.t_epochs_replay_of_records("fmnist-cnn", commands, [dict(runs[0], val_accuracy_curve=[])]) is None


def test_plot_results_draws_each_file_and_refuses_a_bad_spec(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_plot", HARNESS.parent / "plot_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def results(name, curves):
        path = tmp_path / name
        runs = [
            {"recipe": "rramctl", "method": "to", "seed": s, "test_accuracy_curve": c} for s, c in enumerate(curves)
        ]
        path.write_text(json.dumps({"runs": runs}))
        return path

    a = results("a.json", [[0.5, 0.6], [0.55, 0.65]])
    b = results("b.json", [[0.4, 0.7]])
    curves = mod.curves_of([f"chip={a}", f"host={b}"])
    assert {k: len(v) for k, v in curves.items()} == {"chip": 2, "host": 1}
    assert [m["test_accuracy"] for m in curves["chip"][1]] == [0.55, 0.65]
    out = tmp_path / "fig.png"
    mod.main([str(out), "--title", "t", f"chip={a}"])
    assert out.stat().st_size > 0
    for bad in ("no-label", f"x={tmp_path / 'missing.json'}"):
        with pytest.raises(SystemExit, match="error"):
            mod.curves_of([bad])

"""Smoke test of the benchmarks: `python -m benchmarks --quick` runs and writes complete, finite results.

Timings are not asserted: the numbers depend on the machine and its load."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _dig(d, path):
    for key in path.split("."): d = d[key]
    return d


@pytest.fixture(scope="module")
def quick_dir(tmp_path_factory):
    "One smoke run of every module (`python -m benchmarks --quick`): the results directory and what it printed."
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--results-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def _quick(quick_dir, module: str) -> dict:
    path = quick_dir[0] / f"{module}_quick.json"
    assert path.exists(), quick_dir[1][-2000:]
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def quick_results(quick_dir):
    return _quick(quick_dir, "hessian"), quick_dir[1]


def test_every_benchmark_module_runs_from_the_top(quick_dir):
    from benchmarks import MODULES
    present = {p.stem for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")}
    assert set(MODULES) == present
    for name in MODULES: assert (quick_dir[0] / f"{name}_quick.json").exists(), name


def test_top_level_keys(quick_results):
    res, stdout = quick_results
    for key in ("benchmark", "created", "config", "machine", "model", "reference", "hvp", "lanczos", "slq", "trace",
                "pyhessian", "eigsh_float64", "eigsh_float32", "curvlinops", "small_model", "overhead_components",
                "targets", "notes", "wall_seconds"):
        assert key in res, key
    assert res["benchmark"] == "hessian" and res["config"]["quick"] is True
    for key in ("torch", "torch_threads", "cpu_count", "device", "threads"):
        assert key in res["machine"], key
    assert res["machine"]["torch_threads"] == 1
    assert "Targets" in stdout


@pytest.mark.parametrize("path", [
    "model.num_params", "reference.top_eigenvalues",
    "hvp.bare_hvp_median_s", "hvp.timings.gradviz_reverse_over_reverse.median_s", "hvp.timings.gradviz_forward_over_reverse.median_s",
    "lanczos.top1.timing.median_s", "lanczos.top1.hvps", "lanczos.top1.overhead_ratio", "lanczos.top1.rel_err_vs_reference",
    "lanczos.top10.timing.median_s", "lanczos.top10.hvps", "lanczos.top10.overhead_ratio",
    "slq.timing.median_s", "slq.overhead_ratio", "slq.overhead_ratio_paired_rounds", "slq.overhead_ratio_in_run", "lanczos.top10.overhead_ratio_in_run", "slq.w1_over_range", "slq.without_reorthogonalization.overhead_ratio",
    "trace.timing.median_s", "trace.estimate", "trace.rel_err_vs_reference", "trace.reference.trace",
    "eigsh_float64.top1.ratio_gradviz_over_eigsh", "eigsh_float64.top10.ratio_gradviz_over_eigsh",
    "eigsh_float64.top10.scipy_eigsh.hvps", "eigsh_float64.top10.gradviz_lanczos.rel_err",
    "eigsh_float32.top1.ratio_gradviz_over_eigsh", "eigsh_float32.top10.ratio_gradviz_over_eigsh",
    "small_model.slq.w1_over_range", "small_model.slq.w1_over_range_without_reorthogonalization", "small_model.hutchinson.rel_err", "small_model.exact.trace",
    "overhead_components.ritz_vectors.QT_at_S_s", "wall_seconds",
])
def test_numbers_are_finite(quick_results, path):
    value = _dig(quick_results[0], path)
    values = value if isinstance(value, list) else [value]
    assert values and all(_finite(v) for v in values), (path, value)


def test_timings_keep_every_repeat(quick_results):
    res = quick_results[0]
    t = res["lanczos"]["top10"]["timing"]
    assert t["repeat"] == len(t["times_s"]) == res["config"]["repeat"]
    assert all(_finite(x) and x > 0 for x in t["times_s"])


@pytest.mark.ref
def test_peer_sections_run_or_say_why(quick_results):
    res = quick_results[0]
    if os.environ.get("GRADVIZ_REQUIRE_REFS", "") == "1":  # CI: the peers must have run
        assert not res["pyhessian"].get("skipped") and "skipped" not in res["curvlinops"], res["notes"]
    if res["pyhessian"].get("skipped"):
        assert any("PyHessian" in n for n in res["notes"])
    else:
        for k in ("top1", "top10"):
            sec = res["pyhessian"][k]
            assert _finite(sec["speedup_matched"]) and _finite(sec["pyhessian_default"]["rel_err"])
            assert isinstance(sec["pyhessian_default"]["hvps"], int)
        assert "ok" in res["pyhessian"]["density"]
        if not res["pyhessian"]["density"]["ok"]: assert res["pyhessian"]["density"]["error"]
    if "skipped" in res["curvlinops"]:
        assert any("curvlinops" in n for n in res["notes"])
    else:
        assert _finite(res["eigsh_float32"]["top1"]["ratio_gradviz_over_curvlinops"])


def test_targets_are_well_formed(quick_results):
    targets = quick_results[0]["targets"]
    names = {t["name"] for t in targets}
    assert {"lanczos_top1_overhead", "lanczos_top10_overhead", "slq_overhead", "slq_w1_small_vs_exact",
            "eigsh_top1_ratio", "eigsh_top10_ratio"} <= names
    for t in targets:
        assert set(t) >= {"name", "what", "value", "target", "met", "note"}
        assert t["met"] in (True, False, None)
        if t["met"] is not None: assert _finite(t["value"])


def test_per_sample_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "per_sample")
    assert res["benchmark"] == "per_sample" and set(res["models"]) == {"teaching", "wide"}
    for model in res["models"].values():
        for row in model["rows"]:
            assert _finite(row["speedup"]) and row["max_abs_diff"] < 1e-5
    assert res["target"]["met"] in (True, False)


def test_sven_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "sven")
    assert res["benchmark"] == "sven" and res["config"]["quick"] is True and res["machine"]["torch_threads"] == 1
    for model in res["models"].values():
        assert set(model["ratio_sven_over_adam"]) == {"exact", "gram", "randomized"}
        assert all(_finite(r) and r > 0 for r in model["ratio_sven_over_adam"].values())
        assert _finite(model["ratio_jacobian_over_adam"])
        for rec in model["timings"].values():
            assert rec["repeat"] == len(rec["times_s"]) == 1 and all(_finite(t) and t > 0 for t in rec["times_s"])


def test_spectrum_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "spectrum")
    assert res["benchmark"] == "spectrum" and res["config"]["quick"] is True
    assert _finite(res["gradviz"]["rel_err"]) and res["gradviz"]["rel_err"] < 1e-2
    assert _finite(res["gradviz"]["trace"]) and _finite(res["timing"]["gradviz"]["median_s"])
    if "skipped" in res["pyhessian"]:
        assert any("PyHessian" in n for n in res["notes"])
    else:
        assert _finite(res["timing"]["speedup_gradviz_over_pyhessian"]) and _finite(res["pyhessian"]["trace"])


def test_optimizers_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "optimizers")
    assert res["benchmark"] == "optimizers" and res["config"]["quick"] is True and res["machine"]["torch_threads"] == 1
    assert set(res["sets"]) == {"many_small", "few_large"}
    for s in res["sets"].values():
        assert {"adam_foreach", "diffgrad_foreach", "diffgrad_plain"} <= set(s["timings"])
        for rec in s["timings"].values():
            assert rec["repeat"] == len(rec["times_s"]) == 1 and all(_finite(t) and t > 0 for t in rec["times_s"])
        assert _finite(s["ratios"]["diffgrad_foreach_over_adam_foreach"])
        assert all(_finite(v) and v > 0 for v in s["ratios_paired_rounds"].values())
        assert s["max_abs_param_diff_vs_diffgrad_foreach"]["diffgrad_plain"] == 0.0
        for peer, diff in s["max_abs_param_diff_vs_diffgrad_foreach"].items():
            assert _finite(diff) and diff < 1e-3, (peer, diff)  # ε placement differs where g ≈ 0 (see notes)
        for peer, diff in s["max_abs_param_diff_where_abs_grad_gt_1e-3"].items():
            assert _finite(diff) and diff < 1e-5, (peer, diff)
    names = {t["name"] for t in res["targets"]}
    assert {"vs_adam_many_small", "vs_adam_few_large", "vs_torch_optimizer_many_small"} <= names
    for t in res["targets"]:
        assert t["met"] in (True, False, None)
        if t["met"] is None: assert any("not installed" in n for n in res["notes"])


def test_explorers_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "explorers")
    assert res["benchmark"] == "explorers" and res["summary"]["explorers"] == 1 and res["summary"]["errors"] == 0
    for r in res["explorers"].values():
        assert _finite(r["first_update_s"]) and _finite(r["cached_update_s"])
        for c in r["controls"].values():
            assert _finite(c["median_s"]) and c["mode"] in ("drag", "release", "click")
            assert c["meets_target"] is None if c["costly"] else c["meets_target"] in (True, False)


def test_loader_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "loader")
    assert res["benchmark"] == "loader" and res["config"]["quick"] is True and res["machine"]["torch_threads"] == 1
    assert set(res["problems"]) == {"mlp", "cnn"}
    for prob in res["problems"].values():
        assert prob["model"]["batch_sizes"][-1] < prob["model"]["batch_sizes"][0]  # a short last batch
        for mode in ("gradviz_streaming", "gradviz_keep_graphs"):
            meth = prob["eig"]["methods"][mode]
            assert meth["met_bar"] and meth["rel_err"] <= prob["eig"]["bar"] and _finite(meth["timing"]["median_s"])
        p = prob["products"]
        assert all(d < 1e-4 for d in p["rel_diff_to_in_memory"].values()), p["rel_diff_to_in_memory"]
        for key in ("ratio_keep_graphs_over_in_memory", "ratio_streaming_over_in_memory", "ratio_streaming_fwd_over_in_memory_fwd"):
            assert _finite(p[key]) and p[key] > 0
        for rows in prob["trace"]["budgets"].values():
            assert {"gradviz_hutchpp_keep_graphs", "gradviz_hutchinson_keep_graphs"} <= set(rows)
            assert all(_finite(r["median_abs_err"]) and _finite(r["timing"]["median_s"]) for r in rows.values())
    assert set(res["problems"]["cnn"]["distributed"]) == {"skipped"}  # the smoke run spawns workers for the MLP only
    d, n = res["problems"]["mlp"]["distributed"]["streaming"], res["problems"]["mlp"]["model"]["num_samples"]
    assert _finite(d["ratio_2proc_over_1proc_excluding_startup"]) and _finite(d["ratio_2proc_over_1proc_including_startup"])
    assert d["workers_2"]["max_rel_diff_values_vs_single"] < 1e-4 and sum(r["num_samples"] for r in d["workers_2"]["ranks"]) == n
    assert max(r["num_samples"] for r in d["workers_2"]["ranks"]) - min(r["num_samples"] for r in d["workers_2"]["ranks"]) <= 1
    for t in res["targets"]:
        assert t["met"] in (True, False, None)
        if t["met"] is not None: assert _finite(t["value"])


@pytest.mark.ref
def test_loader_benchmark_peers_run_or_say_why(quick_dir):
    res = _quick(quick_dir, "loader")
    required = os.environ.get("GRADVIZ_REQUIRE_REFS", "") == "1"
    for peer, ok in res["peers_available"].items():
        if required: assert ok, res["notes"]
        if not ok: assert any(peer in n for n in res["notes"])
    for prob in res["problems"].values():
        methods = prob["eig"]["methods"]
        for name in ("hessian_eigenthings", "curvlinops_eigsh", "pyhessian"):
            if name in methods:
                assert "rel_err" in methods[name]["default"] and isinstance(methods[name]["default"]["products"], int)


def test_representation_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "representation")
    assert res["benchmark"] == "representation" and res["config"]["quick"] is True
    assert res["machine"]["torch_threads"] == 1
    if res["ms_loss"]["peer_available"]:
        for row in res["ms_loss"]["rows"].values():
            assert _finite(row["speedup_over_pml"]) and row["float32_value_abs_diff"] < 1e-5
            assert row["float64_grad_max_abs_diff"] < 1e-10
    for row in res["cdc"]["rows"]:
        assert row["max_abs_diff_vs_reference"] < 1e-4
        for mode in ("forward", "forward_backward"):
            assert _finite(row[mode]["ratio_cdc_over_conv"]) and _finite(row[mode]["ratio_reference_over_cdc"])
    names = {t["name"] for t in res["targets"]}
    assert "cdc_over_conv2d" in names and all(t["met"] in (True, False) for t in res["targets"])


def test_scale_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "scale")
    assert res["benchmark"] == "scale" and res["config"]["quick"] is True and res["machine"]["torch_threads"] == 1
    ncv = res["config"]["ncvs"][0]
    for name, model in res["models"].items():
        top = model["top"]
        for label in ("lanczos (full basis)", f"lanczos (ncv={ncv})", "eigsh (same operator)"):
            assert top[label]["met_bar"], (name, label, top[label])
            assert _finite(top[label]["overhead"]) and top[label]["products"] > 0
        assert top[f"lanczos (ncv={ncv})"]["basis_vectors"] == ncv + 1
        assert all(_finite(b["gain"]) for b in model["blocks"].values())
        assert _finite(model["estimators"]["slq_gain"])
    assert all(t["met"] in (True, False) for t in res["targets"])


def test_implicit_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "implicit")
    assert res["benchmark"] == "implicit" and res["config"]["quick"] is True and res["machine"]["torch_threads"] == 1
    rows = res["hypergradient"]["rows"]
    assert rows["gradviz custom_root (cg)"]["rel_error"] <= 1e-6
    for name, row in rows.items(): assert _finite(row["timing"]["median_s"]), name
    for row in res["unrolled"]["rows"].values():
        assert row["implicit_saved_bytes"] < row["unrolled_saved_bytes"]
    assert all(t["met"] in (True, False) for t in res["targets"])


def test_distributed_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "distributed")
    assert res["benchmark"] == "distributed" and res["config"]["quick"] is True
    for row in res["round_time"]["rows"].values():
        assert row["identical_iterates"] is True
        assert _finite(row["ratio_gloo_over_in_process"]) and row["gloo"]["median_s"] > 0
    if res["clipped_sum"]["peer_available"]:
        assert res["clipped_sum"]["max_abs_diff"] < 1e-10 and _finite(res["clipped_sum"]["ratio_over_opacus"])
    assert all(t["met"] in (True, False) for t in res["targets"])


def test_learned_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "learned")
    assert res["benchmark"] == "learned" and res["config"]["quick"] is True and res["machine"]["torch_threads"] == 1
    for row in res["dcdm"]["rows"].values():
        its = row["iterations"]
        assert its["CG"] is not None and its["CG"] == its["scipy cg"]
        assert _finite(row["timings"]["DCDM"]["median_s"])
    rows = res["tanglenas"]["rows"]
    assert res["tanglenas"]["tangle_activation_flat"] is True
    darts = [r["darts"]["activation_bytes"] for r in rows.values()]
    assert darts == sorted(darts) and darts[-1] > darts[0]  # WS-DARTS keeps one activation per choice
    assert all(t["met"] in (True, False) for t in res["targets"])


def test_attacks_benchmark_runs(quick_dir):
    res = _quick(quick_dir, "attacks")
    assert res["benchmark"] == "attacks" and res["config"]["quick"] is True and res["machine"]["torch_threads"] == 1
    if res["peers"]["peer_available"]:
        assert res["peers"]["ifgsm"]["max_abs_diff"] == 0.0 and res["peers"]["mifgsm"]["max_abs_diff"] < 1e-6
        assert _finite(res["peers"]["ifgsm"]["ratio"]) and _finite(res["peers"]["mifgsm"]["ratio"])
    assert _finite(res["bmtc_iteration"]["ratio_bmtc_over_ifgsm"])
    assert all(t["met"] in (True, False) for t in res["targets"])

"""runtime.cpu_isa_cap: the math libraries' instruction set is capped before torch computes, and every
result records the CPU it ran on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from genreid.errors import ConfigError
from genreid.utils.isa import CAP_ENVIRONMENT, apply_cpu_isa_cap, cpu_description
from genreid.utils.provenance import run_record

REPO = Path(__file__).resolve().parents[1]


def _clean_env() -> dict[str, str]:
    names = {n for env in CAP_ENVIRONMENT.values() for n in env}
    return {k: v for k, v in os.environ.items() if k not in names} | {"PYTHONPATH": str(REPO)}


@pytest.mark.parametrize(("cap", "aten"), [("avx2", "AVX2"), ("sse41", "DEFAULT")])
def test_a_cap_set_before_torch_loads_caps_its_kernels(cap, aten):
    script = ("import sys; from genreid.utils.isa import apply_cpu_isa_cap, cpu_description\n"
              "apply_cpu_isa_cap(sys.argv[1])\n"
              "import torch\n"
              "torch.ones(8).sum()\n"
              "d = cpu_description()\n"
              "print(d['aten_capability'], d['cap']['ONEDNN_MAX_CPU_ISA'], d['cap']['MKL_CBWR'])")
    done = subprocess.run([sys.executable, "-c", script, cap], env=_clean_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    level, onednn, mkl = done.stdout.split()
    assert (level, onednn, mkl) == (aten, CAP_ENVIRONMENT[cap]["ONEDNN_MAX_CPU_ISA"], "COMPATIBLE")


def test_off_changes_nothing_and_an_unknown_cap_is_a_user_error(monkeypatch):
    for name in CAP_ENVIRONMENT["avx2"]:
        monkeypatch.delenv(name, raising=False)
    apply_cpu_isa_cap("off")
    assert not any(name in os.environ for name in CAP_ENVIRONMENT["avx2"])
    with pytest.raises(ConfigError, match="cpu_isa_cap"):
        apply_cpu_isa_cap("avx9")


def test_a_cap_after_torch_computed_is_refused_not_silently_ignored(monkeypatch):
    import torch

    torch.ones(8).sum()
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k not in CAP_ENVIRONMENT["sse41"]})
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.fail("this test needs a CPU with vectorised ATen kernels (AVX2 or better)")
    with pytest.raises(ConfigError, match="already runs"):
        apply_cpu_isa_cap("sse41")


def test_provenance_records_the_cpu_model_its_vector_units_and_the_cap():
    cpu = run_record(1)["cpu"]
    assert cpu == cpu_description()
    assert isinstance(cpu["model"], str) and cpu["model"]
    assert isinstance(cpu["isa"], list) and cpu["aten_capability"] in ("DEFAULT", "AVX2", "AVX512")
    assert cpu["cap"] == "off" or isinstance(cpu["cap"], dict)


def test_a_stage_caps_faiss_and_openblas_too_because_the_cap_comes_before_its_config_loads(tmp_path):
    """run_stage applies the cap before the config is loaded: its validation imports faiss and numpy, whose
    SIMD level and OpenBLAS kernel are fixed when they load, so a later cap could reach torch only."""
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text().replace("cpu_isa_cap: 'off'", "cpu_isa_cap: avx2"))
    script = ("import sys\n"
              "from genreid.stage import run_stage, stage_parser\n"
              "def body(cfg, args):\n"
              "    import faiss, threadpoolctl, torch\n"
              "    pools = threadpoolctl.threadpool_info()\n"
              "    blas = {i.get('architecture') for i in pools if i['internal_api'] == 'openblas'}\n"
              "    aten = torch.backends.cpu.get_cpu_capability()\n"
              "    print('LEVELS', faiss.SIMDConfig.get_level_name(), aten, *sorted(blas))\n"
              "sys.exit(run_stage(body, stage_parser('probe', per_dataset=False), ['--params', sys.argv[1]]))\n")
    done = subprocess.run([sys.executable, "-c", script, str(params)], env=_clean_env(), capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already loaded" not in done.stderr, done.stderr[-2000:]
    levels = next(line for line in done.stdout.splitlines() if line.startswith("LEVELS")).split()[1:]
    assert levels[:2] == ["AVX2", "AVX2"], levels
    assert set(levels[2:]) <= {"Haswell"}, levels  # OpenBLAS pinned (numpy's and faiss's copies)


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "stages").glob("*.py")))
def test_stage_scripts_load_no_capped_library_before_run_stage(script):
    """Importing a stage script loads none of the libraries the cap must reach first."""
    probe = ("import runpy, sys\n"
             f"runpy.run_path({str(REPO / 'stages' / script)!r}, run_name='probe')\n"
             "print('LOADED', *[m for m in ('numpy', 'faiss', 'torch') if m in sys.modules])\n")
    done = subprocess.run([sys.executable, "-c", probe], env=_clean_env(), capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert next(x for x in done.stdout.splitlines() if x.startswith("LOADED")).split()[1:] == []


def test_the_cap_in_effect_is_read_back_and_only_a_real_cap_counts_as_a_setting(monkeypatch):
    from genreid.utils.isa import active_cap, computing_runtime

    for name in {n for env in CAP_ENVIRONMENT.values() for n in env}:
        monkeypatch.delenv(name, raising=False)
    assert active_cap() == "off"
    for name, value in CAP_ENVIRONMENT["avx2"].items():
        monkeypatch.setenv(name, value)
    assert active_cap() == "avx2"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # a partial cap is no cap
    assert active_cap() == "off"
    assert computing_runtime({"num_threads": 8, "cpu_isa_cap": "off"}) == {} == computing_runtime(None)
    assert computing_runtime({"num_threads": 8, "cpu_isa_cap": "sse41"}) == {"cpu_isa_cap": "sse41"}

"""Cap the math libraries' instruction set at process start, and describe the CPU a result ran on.

Why: torch's CPU results depend on the instruction set its libraries pick (ATen's vectorised
kernels: AVX-512, AVX2 or plain; oneDNN's JIT convolutions; MKL's GEMM code paths). The same
deterministic run gives other bits on an AVX-512 machine than on an AVX2 one. Capping all three
at one level makes machines that reach that level run the same kernel families:

* ``ONEDNN_MAX_CPU_ISA`` caps oneDNN's JIT kernels (convolutions);
* ``ATEN_CPU_CAPABILITY`` caps ATen's vectorised elementwise and reduction kernels;
* ``MKL_CBWR=COMPATIBLE`` puts MKL (matrix products) on its conditional-numerical-reproducibility
  path. It is the only CNR mode MKL honours on AMD CPUs: ``MKL_CBWR=AVX2`` there reports
  ``CNR:AUTO`` under ``MKL_VERBOSE=1`` (measured with oneMKL 2024.0 on an AMD EPYC).
* ``OPENBLAS_CORETYPE`` pins the OpenBLAS kernels of numpy and faiss (the k-nearest-neighbour
  search of clustering); ``FAISS_SIMD_LEVEL`` caps faiss's own SIMD code (faiss 1.11 and later
  dispatch at run time and read it when they load), ``FAISS_OPT_LEVEL`` picks the library of older
  faiss builds.

OpenBLAS and faiss read their variables when they load, torch's libraries when they first run a
kernel, so :func:`apply_cpu_isa_cap` must run before any of them is imported:
``genreid.stage.run_stage`` reads the cap from the params file with :func:`requested_cap` and applies
it before loading the config, and so before anything the stage imports. oneDNN may still
choose cache-size-dependent blockings, so identical bits are guaranteed only on the same CPU type
(docs/reproducibility.md).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

CAP_ENVIRONMENT: dict[str, dict[str, str]] = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE",
             "OPENBLAS_CORETYPE": "Haswell", "FAISS_SIMD_LEVEL": "AVX2", "FAISS_OPT_LEVEL": "AVX2"},
    "sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE",
              "OPENBLAS_CORETYPE": "Nehalem", "FAISS_SIMD_LEVEL": "NONE", "FAISS_OPT_LEVEL": "generic"},
}
CAPS = ("off", *CAP_ENVIRONMENT)
_ATEN_EXPECTED = {"avx2": "AVX2", "sse41": "DEFAULT"}
_ISA_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile", "amx_bf16")
_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "OPENBLAS_CORETYPE", "FAISS_SIMD_LEVEL",
              "FAISS_OPT_LEVEL")


def computing_runtime(runtime: Any) -> dict[str, Any]:
    """The ``runtime`` keys that change the bits a run computes, as they enter settings fingerprints and
    resume signatures: the cap, when it is not ``off`` (other runtime keys, threads or workers, change
    nothing computed; at ``off`` the result is empty, so signatures written before the cap counted
    stay valid)."""
    cap = runtime.get("cpu_isa_cap", "off") if isinstance(runtime, dict) else "off"
    return {} if cap in (None, "off") else {"cpu_isa_cap": cap}


def cap_name(environment: Any) -> str:
    """The cap whose variables ``environment`` (a mapping, or the string ``off``) all holds; ``off``
    otherwise (a provenance block records the variables, not the key)."""
    if isinstance(environment, Mapping):
        for name, env in CAP_ENVIRONMENT.items():
            if all(environment.get(k) == v for k, v in env.items()):
                return name
    return "off"


def active_cap() -> str:
    """The cap whose variables are all set in this process, ``off`` when none is (a stage applied it
    with :func:`apply_cpu_isa_cap`); for the signatures of resumable outputs."""
    return cap_name(os.environ)


def requested_cap(params_path: str | os.PathLike) -> str:
    """``runtime.cpu_isa_cap`` as written in the params file, read without the config machinery (which
    imports the libraries the cap must reach first). ``off`` when the file or key cannot be read or
    comes from a ``_base_`` recipe: the config check then reports the problem, or the cap is applied
    after loading, with a warning naming the libraries it came too late for."""
    import yaml  # pure Python: loads none of the capped libraries

    try:
        with open(params_path, encoding="utf-8") as fh:
            tree = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError):
        return "off"
    cap = computing_runtime(tree.get("runtime") if isinstance(tree, dict) else None).get("cpu_isa_cap", "off")
    return cap if isinstance(cap, str) else "off"


def apply_cpu_isa_cap(cap: str) -> None:
    """Set the three variables for ``cap`` (``off`` leaves the environment alone).

    If torch is already loaded (a stage called inside another Python program), ATen's level is
    checked: a kernel that already ran fixed it, and the cap cannot hold; that is an error, not
    a silently different result."""
    if cap == "off":
        return
    if cap not in CAP_ENVIRONMENT:
        from genreid.errors import ConfigError

        raise ConfigError(f"runtime.cpu_isa_cap: {cap!r} is not one of {list(CAPS)}", "set it to off, avx2 or sse41")
    for name, value in CAP_ENVIRONMENT[cap].items():
        if os.environ.get(name, value) != value:
            log.warning("runtime.cpu_isa_cap %s: %s=%s from the environment replaced by %s", cap, name,
                        os.environ[name], value)
        os.environ[name] = value
    loaded = [m for m in ("numpy", "faiss") if m in sys.modules]
    if loaded:
        log.warning("runtime.cpu_isa_cap %s: %s already loaded its BLAS before the cap", cap, ", ".join(loaded))
    if "torch" in sys.modules:
        import torch

        level = torch.backends.cpu.get_cpu_capability()
        if level != _ATEN_EXPECTED[cap]:
            from genreid.errors import ConfigError

            raise ConfigError(f"runtime.cpu_isa_cap {cap}: torch already runs {level} kernels in this process "
                              "(it computed before the cap was set)",
                              f"start the stage as its own process (python stages/...) or export "
                              f"{' '.join(f'{k}={v}' for k, v in CAP_ENVIRONMENT[cap].items())} before Python starts")


def cpu_description() -> dict[str, Any]:
    """The CPU model, its vector instruction sets, and the cap the math libraries ran under."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:  # Linux; elsewhere only platform's name
            for line in fh:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
                if "model name" in info and "flags" in info:
                    break
    except OSError:
        pass
    model = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    out: dict[str, Any] = {"model": model, "isa": [f for f in _ISA_FLAGS if f in flags],
                           "cap": {k: os.environ[k] for k in _VARIABLES if k in os.environ} or "off"}
    if "torch" in sys.modules:
        import torch

        out["aten_capability"] = torch.backends.cpu.get_cpu_capability()
    faiss = sys.modules.get("faiss")
    if faiss is not None and hasattr(faiss, "SIMDConfig"):  # faiss with run-time SIMD dispatch
        out["faiss_simd_level"] = faiss.SIMDConfig.get_level_name()
    return out

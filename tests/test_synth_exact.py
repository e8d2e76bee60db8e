"""SynthReID is the same bytes on every machine: exact maths, and generation under CPU caps.

Each generation runs in a fresh interpreter with the math libraries capped or re-threaded the
way another machine would run them (oneDNN/ATen/MKL instruction-set caps, numpy's SIMD dispatch
off, OpenBLAS on another kernel, libjpeg-turbo without SIMD, 1 or 2 threads); every run must give
the committed content hash.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genreid.body import load_body_model
from genreid.body.exact import load_exact_body
from genreid.config import GenreidConfig
from genreid.render.exact import _nearest_per_pixel
from genreid.synth import SynthConfig, generate_synthreid
from genreid.synth.generator import GENERATOR_VERSION, content_hash, jpeg_encoder
from genreid.synth.reference import check_reference, find_reference
from genreid.utils import exactmath

REPO = Path(__file__).resolve().parents[1]
# content hash of the default dataset's first 8 images (batch_size 8, one batch, with its ground-truth
# chunk): a fast stand-in for the full reference in genreid/synth/reference.py
SLICE_SHA256 = "0399d232f2463dd921a09c28aba148c0481b6d38265e5cc2c6fb0dbb3e73527a"
_SCRIPT = r"""
import sys
from pathlib import Path

import torch

torch.set_num_threads(int(sys.argv[2]))
from genreid.config import GenreidConfig
from genreid.synth.generator import content_hash, generate_synthreid

out, part = Path(sys.argv[1]), sys.argv[3]
settings = GenreidConfig().data.synthetic
if part == "slice":
    generate_synthreid(out / "images", settings, batch_size=8, stop_after_batches=1, work_dir=out / "work",
                       progress=False)
    print(content_hash(out / "work"))
else:
    generate_synthreid(out / "images", settings, progress=False)
    print(content_hash(out / "images"))
"""
_NUMPY_SIMD = "X86_V3 X86_V4 AVX512_ICL"  # numpy's runtime-dispatched SIMD levels above its baseline
# name -> (environment, threads); threads also set OMP/MKL/OpenBLAS threads and torch.set_num_threads
CPU_VARIANTS = {
    "as_is_2_threads": ({}, 2),
    "onednn_avx2_1_thread": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, 1),
    "onednn_avx512_2_threads": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, 2),
    "onednn_avx2_2_threads": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, 2),
    "as_is_1_thread": ({}, 1),
    "aten_default_mkl_compatible": ({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}, 1),
    "no_numpy_simd_openblas_haswell_jpeg_no_simd": (
        {"NPY_DISABLE_CPU_FEATURES": _NUMPY_SIMD, "OPENBLAS_CORETYPE": "Haswell", "JSIMD_FORCENONE": "1"}, 2),
}
FAST_VARIANTS = ("as_is_2_threads", "onednn_avx2_1_thread", "no_numpy_simd_openblas_haswell_jpeg_no_simd")


def _generate_in_subprocess(out: Path, variant: str, part: str) -> str:
    extra, threads = CPU_VARIANTS[variant]
    env = {k: v for k, v in os.environ.items()
           if k not in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "NPY_DISABLE_CPU_FEATURES",
                        "OPENBLAS_CORETYPE", "JSIMD_FORCENONE")}
    env.update(extra, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(out), str(threads), part], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def _default_settings() -> dict:
    return {"generator_version": GENERATOR_VERSION, **GenreidConfig().data.synthetic.model_dump()}


def test_transcendentals_agree_with_the_c_library():
    x = np.random.default_rng(0).uniform(-40, 40, 20000)
    s, c = exactmath.sincos(x)
    assert np.abs(s - [math.sin(v) for v in x]).max() < 4e-16
    assert np.abs(c - [math.cos(v) for v in x]).max() < 4e-16
    e = np.random.default_rng(1).uniform(-30, 30, 20000)
    assert np.abs(exactmath.exp(e) / [math.exp(v) for v in e] - 1).max() < 5e-16
    y, xx = np.random.default_rng(2).normal(size=(2, 20000))
    assert np.abs(exactmath.atan2(y, xx) - [math.atan2(a, b) for a, b in zip(y, xx)]).max() < 2e-15
    assert exactmath.atan2(0.0, 0.0) == 0.0 and exactmath.atan2(1.0, 0.0) == math.pi / 2


def test_small_products_and_sums_match_numpy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 4, 2))
    assert np.allclose(exactmath.matmul(a, b), a @ b, rtol=0, atol=1e-14)
    assert np.allclose(exactmath.matvec(a, b[..., 0]), (a @ b[..., :1])[..., 0], rtol=0, atol=1e-14)
    assert np.allclose(exactmath.ordered_sum(a, 1), a.sum(1), rtol=0, atol=1e-14)


def test_exact_skinning_matches_the_torch_body_model():
    rng = np.random.default_rng(4)
    betas, pose = rng.normal(size=(3, 10)), rng.normal(0, 0.5, size=(3, 72))
    verts, joints = load_body_model("procedural")(torch.as_tensor(betas, dtype=torch.float32),
                                                  torch.as_tensor(pose, dtype=torch.float32))
    posed = load_exact_body("procedural").forward(betas, pose)
    assert np.abs(verts.numpy() - posed.vertices).max() < 1e-5
    assert np.abs(joints.numpy() - posed.joints).max() < 1e-5


def test_depth_resolution_keeps_the_nearest_and_the_lowest_face_of_a_tie():
    rng = np.random.default_rng(5)
    for size, pixels in ((5000, 300), (20000, 70000)):
        pixel, depth = rng.integers(0, pixels, size), rng.integers(0, 4, size).astype(float)
        got = _nearest_per_pixel(pixel, depth, pixels)
        order = np.lexsort((np.arange(size), -depth, pixel))
        first = np.r_[True, pixel[order][1:] != pixel[order][:-1]]
        assert np.array_equal(np.sort(got), np.sort(order[first]))


def test_output_does_not_depend_on_the_batch_size(tmp_path):
    tiny = SynthConfig(seed=3, num_train_ids=2, num_test_ids=2, num_cameras=2, cameras_per_id=2,
                       images_per_camera=2, num_distractors=1, height=64)
    generate_synthreid(tmp_path / "a", tiny, batch_size=8, progress=False)
    generate_synthreid(tmp_path / "b", tiny, batch_size=3, progress=False)
    assert content_hash(tmp_path / "a") == content_hash(tmp_path / "b")


def test_the_default_settings_have_a_committed_reference_and_the_check_explains_a_difference():
    settings = _default_settings()
    entry = find_reference(settings)
    assert entry is not None, "no committed reference for the default settings: run python -m genreid.synth.reference"
    encoder = jpeg_encoder()
    assert entry["encoder"] == encoder, "the reference was made with another Pillow than requirements.lock pins"
    assert check_reference(settings, entry["content_sha256"], encoder).status == "match"
    other = check_reference(settings, "0" * 64, {"pillow": "0.0", "libjpeg_turbo": "0.0"})
    assert other.status == "differs" and entry["content_sha256"] in other.message
    assert "JPEG encoder" in other.message and "requirements.lock" in other.message
    assert check_reference({**settings, "seed": 99}, "0" * 64, encoder).status == "none"


@pytest.mark.parametrize("variant", FAST_VARIANTS)
def test_a_slice_of_the_default_dataset_is_the_same_bytes_under_cpu_caps(tmp_path, variant):
    assert _generate_in_subprocess(tmp_path, variant, "slice") == SLICE_SHA256


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(set(CPU_VARIANTS) - set(FAST_VARIANTS)))
def test_the_slice_under_the_other_cpu_caps(tmp_path, variant):
    assert _generate_in_subprocess(tmp_path, variant, "slice") == SLICE_SHA256


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["as_is_2_threads", "onednn_avx2_1_thread"])
def test_the_full_default_dataset_has_the_committed_hash(tmp_path, variant):
    entry = find_reference(_default_settings())
    assert entry is not None
    assert _generate_in_subprocess(tmp_path, variant, "full") == entry["content_sha256"]


def test_prepare_records_the_hash_and_warns_when_it_differs_from_the_reference(tmp_path, monkeypatch, caplog):
    from genreid.data.prepare import PrepareOptions, prepare_dataset
    from genreid.synth import reference

    tiny = dict(seed=4, num_train_ids=3, num_test_ids=2, num_cameras=2, cameras_per_id=2, images_per_camera=2,
                num_distractors=1, height=64)
    settings = {"generator_version": GENERATOR_VERSION, **GenreidConfig().data.synthetic.model_dump(), **tiny}
    wrong = {"settings": settings, "content_sha256": "f" * 64, "encoder": jpeg_encoder()}
    monkeypatch.setattr(reference, "REFERENCES", (wrong,))
    with caplog.at_level("WARNING", logger="genreid.synth.reference"):
        summary = prepare_dataset("synthetic", tiny, tmp_path / "prepared",
                                  PrepareOptions(val_fraction=0.34, progress=False, expected_counts="canonical"))
    source = summary["source"]
    assert source["reference"] == "differs" and source["content_sha256"] == content_hash(tmp_path / "prepared/images")
    assert any("differs from the committed reference " + "f" * 64 in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(reference, "REFERENCES", ({**wrong, "content_sha256": source["content_sha256"]},))
    again = prepare_dataset("synthetic", tiny, tmp_path / "again",
                            PrepareOptions(val_fraction=0.34, progress=False, expected_counts="canonical"))
    assert again["source"]["reference"] == "match" and again["source"]["content_sha256"] == source["content_sha256"]

"""The ``genreid evaluate`` command and the evaluate stage on a tiny prepared dataset."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from genreid.cli import main as genreid_main
from genreid.config.loader import resolve_recipe
from genreid.data.manifest import write_manifest
from genreid.evaluation import compute_distance, evaluate_rank
from genreid.evaluation.extract import extract_features
from genreid.models.id_encoder import build_encoder, save_encoder
from genreid.report.collect import read_metrics

ROOT = Path(__file__).resolve().parents[1]


def test_cli_on_a_distance_matrix_and_on_features(tmp_path, capsys):
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(12, 6)), rng.normal(size=(40, 6))
    arrays = dict(query_pids=rng.integers(0, 6, 12), gallery_pids=rng.integers(0, 6, 40),
                  query_camids=rng.integers(0, 3, 12), gallery_camids=rng.integers(0, 3, 40))
    dist = compute_distance(qf, gf)
    expected = evaluate_rank(dist, arrays["query_pids"], arrays["gallery_pids"], arrays["query_camids"],
                             arrays["gallery_camids"], protocol="interpolated")
    np.savez(tmp_path / "d.npz", distmat=dist, **arrays)
    assert genreid_main(["evaluate", str(tmp_path / "d.npz"), "--protocol", "interpolated",
                         "--cmc-csv", str(tmp_path / "cmc.csv")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["mAP"] == pytest.approx(100 * expected.mAP, abs=1e-5)
    assert (printed["protocol"], printed["source"], printed["units"]) == ("interpolated", "distmat", "percent")
    rows = list(csv.DictReader(open(tmp_path / "cmc.csv")))
    assert len(rows) == 40 and float(rows[0]["cmc"]) == pytest.approx(100 * expected.rank(1))

    torch.save({"query_features": torch.from_numpy(qf), "gallery_features": torch.from_numpy(gf),
                **{k: torch.from_numpy(v) for k, v in arrays.items()}}, tmp_path / "f.pt")
    out = tmp_path / "m.json"
    assert genreid_main(["evaluate", str(tmp_path / "f.pt"), "--protocol", "interpolated", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["mAP"] == printed["mAP"]

    np.savez(tmp_path / "bad.npz", distmat=dist, query_pids=arrays["query_pids"])
    assert genreid_main(["evaluate", str(tmp_path / "bad.npz")]) == 2
    assert "lacks gallery_pids, query_camids, gallery_camids" in capsys.readouterr().err


def _prepared_dataset(root: Path, rng: np.random.Generator) -> None:
    """6 identities x 3 cameras x 2 images, colour by identity: query = first image of camera 0."""
    folder = root / "prepared" / "synthetic"
    rows = {"query": [], "gallery": []}
    colours = rng.integers(0, 255, size=(7, 3))
    for pid in range(1, 7):
        for cam in range(3):
            for shot in range(2):
                img = np.clip(colours[pid] + rng.normal(0, 25, size=(32, 16, 3)), 0, 255).astype(np.uint8)
                rel = f"images/{pid:04d}_c{cam}_{shot}.png"
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(folder / rel)
                split = "query" if cam == 0 and shot == 0 else "gallery"
                rows[split].append({"path": rel, "pid": pid, "camid": cam, "split": split, "sha1": "x"})
    import pandas as pd

    for split, recs in rows.items():
        write_manifest(pd.DataFrame(recs), folder / f"manifest_{split}.csv")


def _run_stage(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("stage_evaluate", ROOT / "stages" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def test_evaluate_stage_writes_metrics_curve_and_pictures(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    _prepared_dataset(tmp_path / "data", rng)
    tree = resolve_recipe(ROOT / "params" / "synthetic_cpu.yaml")
    tree["data"]["root"] = str(tmp_path / "data")
    tree["model"].update(embedding_dim=16, stripes=2)
    tree["eval"].update(batch_size=8, ranked_list_queries=2)
    tree["runtime"]["num_threads"] = 1  # tiny batches: OpenMP across shared cores only adds waiting
    torch.set_num_threads(1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    encoder = build_encoder("resnet18", "none", "avg", 16, 1, 2)
    save_encoder(encoder, tmp_path / "models/synthetic/baseline/encoder.pt", {"selected_epoch": 4, "resumed": True})

    assert _run_stage(["--dataset", "synthetic", "--method", "baseline"]) == 0
    out = tmp_path / "results/synthetic/baseline"
    record = json.loads((out / "metrics.json").read_text())
    # metrics.json holds numbers only (what `dvc metrics diff` lists); the rest is in provenance.json
    assert sorted(record) == ["R1", "R10", "R5", "counts", "mAP", "mINP"]
    assert record["counts"] == {"num_query": 6, "num_gallery": 30, "num_valid_queries": 6,
                                "num_skipped_queries": 0, "num_ties": 0}
    origin = json.loads((out / "provenance.json").read_text())
    assert origin["training"] == {"selected_epoch": 4, "resumed": True}
    assert (origin["protocol"], origin["units"], origin["seed"]) == ("rank", "percent", tree["seed"])
    assert origin["provenance"]["seed"] == tree["seed"] and "versions" in origin["provenance"]
    assert read_metrics(out / "metrics.json")[1] == tree["seed"]  # the seed is read from provenance.json
    # the same numbers by hand: features of the saved encoder, distances, metrics
    from genreid.data.loader import ImageDataset
    from genreid.data.manifest import load_prepared

    frames = load_prepared(tmp_path / "data/prepared/synthetic", splits=("query", "gallery"))
    q, g = (extract_features(encoder, ImageDataset(frames[s], 64, 32)) for s in ("query", "gallery"))
    expected = evaluate_rank(compute_distance(q.features, g.features), q.pids, g.pids, q.camids, g.camids)
    assert record["mAP"] == pytest.approx(100 * expected.mAP, abs=1e-4)
    assert read_metrics(out / "metrics.json")[0]["R1"] == pytest.approx(100 * expected.rank(1), abs=1e-4)
    cmc = list(csv.DictReader(open(out / "cmc.csv")))
    assert [int(r["rank"]) for r in cmc] == list(range(1, 31))
    assert float(cmc[-1]["cmc"]) == pytest.approx(100.0)
    with Image.open(out / "ranked_lists.png") as im:
        assert im.height == 4 * (128 + 18)  # 2 best + 2 worst rows of 64x128 tiles
    assert (out / "config.resolved.yaml").is_file()

    assert _run_stage(["--dataset", "synthetic", "--method", "untrained"]) == 0
    first = json.loads((tmp_path / "results/synthetic/untrained/metrics.json").read_text())
    assert _run_stage(["--dataset", "synthetic", "--method", "untrained"]) == 0
    second = json.loads((tmp_path / "results/synthetic/untrained/metrics.json").read_text())
    origin = json.loads((tmp_path / "results/synthetic/untrained/provenance.json").read_text())
    assert first == second and origin["training"] == {"initialisation": "none"}

    assert _run_stage(["--dataset", "synthetic", "--method", "gcl"]) == 2  # no checkpoint: a clean error
    assert _run_stage(["--dataset", "synthetic", "--method", "bogus"]) == 2

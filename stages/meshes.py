"""DVC stage ``meshes@<ds>``: SMPL per image (HMR, landmark fit, SynthReID oracle) -> renders at every angle.

Writes data/meshes/<ds>/ (<split>_render_<angle>.npy, <split>_smpl.npz, <split>_index.csv,
<split>_done.json, config.resolved.yaml) and results/<ds>/meshes/overlay.png + alignment.json, and the
mesh accuracy against SynthReID's ground truth of the estimator used and of mesh.also_measure:
accuracy.json (aggregates), accuracy_images.csv (per image) and worst.png (the worst cases).
A rerun after an interruption continues from the last verified chunk (declare the output
folder ``persist: true`` in dvc.yaml so DVC keeps the partial work).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.layout import layout
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> Path:
    from genreid.body import load_body_model
    from genreid.data.manifest import load_prepared
    from genreid.meshes.estimators import EstimatorFiles, LandmarkOptions, OracleEstimator, make_estimator
    from genreid.meshes.export import export_authors_layout
    from genreid.meshes.fit import FitSettings
    from genreid.meshes.stage import MeshSource, RenderChecks, RenderOptions, run_meshes
    from genreid.utils.atomic import write_json
    from genreid.utils.device import resolve_device
    from genreid.utils.provenance import run_record, timestamp
    from genreid.utils.seeding import seed_everything

    ds, m = args.dataset, cfg.mesh
    paths = layout(cfg.data.root, ds)
    prepared, out_dir, results = paths.prepared, paths.meshes, paths.results_dir("meshes")
    seed_everything(cfg.seed, cfg.runtime.deterministic)
    device = resolve_device(cfg.runtime.device)
    tables = load_prepared(prepared, splits=tuple(m.splits))
    body_model = load_body_model(m.body_model)
    if hasattr(body_model, "to"):
        body_model = body_model.to(device)
    files = EstimatorFiles(paths.ground_truth, m.hmr_checkpoint, m.smpl_mean_params, m.hmr_rescale,
                           LandmarkOptions(m.landmarks_input_size, m.landmarks_fill, cfg.data.width / cfg.data.height,
                                           FitSettings(iterations=m.fit_iterations)))
    estimator = make_estimator(m.estimator, ds, files, body_model, device)
    masks = None
    if isinstance(estimator, OracleEstimator) and estimator.has_masks:
        def masks(paths: list[str]):
            return estimator.masks(paths, cfg.data.height, cfg.data.width)
    source = MeshSource(estimator, body_model, m.body_model)
    options = RenderOptions(m.angles, cfg.data.height, cfg.data.width, m.batch_size, device)
    report = run_meshes(tables, prepared, out_dir, source, options,  # tables: the splits of m.splits, in order
                        RenderChecks(results, m.overlay_samples, cfg.seed, masks))
    if m.export_dir:
        export_authors_layout(out_dir, list(m.splits), paths.authors_export(m.export_dir))
    seconds = write_accuracy(cfg, ds, files, estimator, body_model, tables, device)
    write_json(results / "alignment.json",
               {"dataset": ds, "estimator": estimator.name, "angles": m.angles,
                "render_size": [cfg.data.height, cfg.data.width], **report, "accuracy_seconds": seconds,
                "provenance": run_record(cfg.seed, device, finished_at=timestamp())})
    return out_dir


def write_accuracy(cfg: GenreidConfig, ds: str, files, estimator, body_model, tables: dict, device) -> dict:
    """accuracy.json, accuracy_images.csv and worst.png of the estimator used and of mesh.also_measure
    (against SynthReID's ground truth where the dataset has it); returns the extra estimators' seconds."""
    import pandas as pd

    from genreid.body import load_body_model
    from genreid.meshes.accuracy import worst_cases_sheet
    from genreid.meshes.estimators import make_estimator, resolve_estimator
    from genreid.meshes.overlay import save_png
    from genreid.meshes.stage import measure_accuracy
    from genreid.synth.ground_truth import load_ground_truth
    from genreid.utils.atomic import write_json, write_text

    m, paths = cfg.mesh, layout(cfg.data.root, ds)
    prepared, results = paths.prepared, paths.results_dir("meshes")
    truth = load_ground_truth(files.ground_truth) if Path(files.ground_truth).is_file() else None
    others = {name: make_estimator(name, ds, files, body_model, device)
              for name in dict.fromkeys(resolve_estimator(n, files) for n in m.also_measure)
              if name != estimator.name and truth is not None}
    generator_body = getattr(getattr(cfg.data, ds, None), "body_model", m.body_model)  # SynthReID's own body
    truth_body = load_body_model(generator_body).to(device) if truth is not None else body_model
    accuracy, measured = measure_accuracy(tables, prepared, paths.meshes, estimator.name,
                                          others, truth, (body_model, truth_body), m.batch_size)
    seconds = accuracy.pop("seconds")
    write_json(results / "accuracy.json", {"dataset": ds, "render_size": [cfg.data.height, cfg.data.width],
                                           "joints": "the 24 SMPL joints of the body model", **accuracy})
    write_text(results / "accuracy_images.csv",
               pd.concat([x.scores for x in measured], ignore_index=True).to_csv(index=False))
    shown = [x for x in measured if x.estimator != "oracle" and x.split == m.splits[0]] or measured[:1]
    save_png(worst_cases_sheet(shown, prepared), results / "worst.png")
    return seconds


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    sys.exit(main())

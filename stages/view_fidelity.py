"""DVC stage ``view_fidelity@<ds>-<run>``: how well a generator's novel views match SynthReID's true views.

``--run pretrain`` measures stage 2's generator (models/<ds>/pretrain/generator.pt with the frozen stage-1
encoder); ``--run gcl`` / ``gcl_plus`` the generator a stage-3 run ended with (its last checkpoint under
models/<ds>/<run>/ckpt). Reads the validation images (data/prepared/<ds>), their structure renders
(data/meshes/<ds>, val split) and true views (data/true_views/<ds>); writes
results/<ds>/<run>/view_fidelity.json (per angle: masked L1, PSNR, SSIM, silhouette IoU, identity rank-1
and mAP; genreid/gan/view_fidelity.py). A run without a generator (the control arms) and a real dataset
(no true views) write the file with ``available: false`` and the reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.layout import BASELINE_RUN, layout
from genreid.registry import PRETRAIN_RUN, method_names, method_spec
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    from genreid.errors import DataError
    from genreid.utils.atomic import write_json
    from genreid.utils.provenance import run_record, timestamp

    ds, run = args.dataset, args.run
    out = layout(cfg.data.root, ds).results_dir(run) / "view_fidelity.json"
    head = {"dataset": ds, "run": run}
    if run != PRETRAIN_RUN and not method_spec(run).needs_generator:
        write_json(out, {**head, "available": False, "reason": f"{run} trains no generator"})
        return
    try:
        report = measure(cfg, ds, run)
    except DataError as exc:  # a real dataset: no true views exist
        write_json(out, {**head, "available": False, "reason": exc.problem})
        return
    write_json(out, {**head, "available": True, **report,
                     "provenance": run_record(cfg.seed, "cpu", finished_at=timestamp())})


def measure(cfg: GenreidConfig, ds: str, run: str) -> dict:
    import torch

    from genreid.data.manifest import load_prepared
    from genreid.data.true_views import load_true_views
    from genreid.engine.batches import image_dataset
    from genreid.errors import CheckpointError
    from genreid.gan.renders import open_renders
    from genreid.gan.view_fidelity import stage2_generator, stage3_generator, view_fidelity
    from genreid.models.id_encoder import load_encoder

    files = layout(cfg.data.root, ds)
    truth = load_true_views(files.true_views, "val")  # first: real data stops here
    val = load_prepared(files.prepared, splits=("val",))["val"]
    if [Path(p).name for p in truth.paths] != [Path(p).name for p in val["path"]]:
        raise CheckpointError(f"{files.true_views} holds other validation images than the manifest",
                              f"rerun `dvc repro true_views@{ds}`")
    store = open_renders(str(files.meshes), "val", val, cfg.mesh.angles)
    if run == PRETRAIN_RUN:
        gen = stage2_generator(files.generator, files.encoder(BASELINE_RUN))
    else:
        gen = stage3_generator(files.checkpoints(run), files.encoder(run), files.generator)
    reference, _ = load_encoder(files.encoder(BASELINE_RUN))
    dataset = image_dataset(val, cfg.data.height, cfg.data.width)
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    return view_fidelity(gen, reference, images, store, truth, val["pid"].tolist(), cfg.mesh.angles)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, choices=(PRETRAIN_RUN, *method_names()),
                        help="pretrain (stage 2's generator) or a stage-3 method")
    return run_stage(body, parser, argv)


if __name__ == "__main__":
    sys.exit(main())

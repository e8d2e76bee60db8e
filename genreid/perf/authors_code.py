"""How the authors' code is run on CPU beside genreid, for the side-by-side benchmarks.

The authors' repository (github.com/chenhao2345/GCL) is never copied into this project: a benchmark
exports it to a folder outside and runs it in a child process whose script starts with
:data:`AUTHORS_CPU_PRELUDE`. The prelude makes their code importable on a CPU-only machine with
today's libraries, changing nothing it computes:

- ``cv2`` is stubbed (imported at module level, used only by their visualisation helpers);
- ``Tensor.cuda`` returns the tensor itself (their losses call ``.cuda()``);
- torchvision's ``resnet50(pretrained=...)``, removed in torchvision 0.17, builds random weights;
- ``beta1: 0`` and ``beta2`` from their YAML become floats, as torch 2's Adam requires.

After the prelude the child has ``a`` (its JSON arguments: at least ``authors``, the export folder,
and ``threads``), ``config`` (their ``configs/latest.yaml``), ``ft_net`` and ``DGNet_Trainer``.
"""

from __future__ import annotations

AUTHORS_CPU_PRELUDE = r"""
import json, sys, types
import torch, torchvision, yaml
a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
sys.path.insert(0, a["authors"])
sys.modules.setdefault("cv2", types.ModuleType("cv2"))
torch.Tensor.cuda = lambda self, *args, **kwargs: self          # their losses call .cuda()
_r50 = torchvision.models.resnet50
torchvision.models.resnet50 = lambda pretrained=False, **kw: _r50(weights=None, **kw)
from gcl.models.resnet import ft_net
from gcl.trainer import DGNet_Trainer
config = yaml.safe_load(open(a["authors"] + "/configs/latest.yaml"))
config["beta1"], config["beta2"] = float(config["beta1"]), float(config["beta2"])  # torch 2.x wants both floats
"""

"""Reading the official SMPL model files without chumpy.

The SMPL ``.pkl`` files are Python-2 pickles whose arrays are ``chumpy.Ch`` objects (state
dict with the value under ``"x"``) and whose ``J_regressor`` is a ``scipy.sparse`` matrix.
chumpy does not install on current Python, so :class:`_SafeUnpickler` maps chumpy classes to a
small stand-in that keeps only the array, and refuses every class outside numpy/scipy.sparse
(a model file has no business running code). ``.npz`` files hold the same keys as arrays.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from genreid.errors import DataError

REQUIRED_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
_ALLOWED_BUILTINS = {"object", "set", "frozenset", "slice", "complex", "bytearray", "tuple", "list", "dict", "encode"}


class _ChumpyArray:
    """What a pickled ``chumpy.Ch`` becomes: only its value survives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.value: Any = None

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.value = state.get("x", next((v for v in state.values() if isinstance(v, np.ndarray)), None))
        else:
            self.value = state


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        root = module.split(".")[0]
        if root == "chumpy":
            return _ChumpyArray
        if root in ("numpy", "copy_reg", "copyreg", "_codecs") or module.startswith("scipy.sparse"):
            return super().find_class(module, name)
        if root in ("__builtin__", "builtins") and name in _ALLOWED_BUILTINS:
            return super().find_class("builtins", name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a body model file")


def _to_array(value: Any) -> np.ndarray:
    if isinstance(value, _ChumpyArray):
        value = value.value
    if hasattr(value, "toarray"):  # scipy.sparse
        value = value.toarray()
    return np.asarray(value)


def read_smpl_file(path: str | Path) -> dict[str, np.ndarray]:
    """The model arrays of an SMPL ``.pkl`` (chumpy or plain) or ``.npz`` file, checked."""
    path = Path(path)
    fix = ("download SMPL (https://smpl.is.tue.mpg.de, e.g. basicModel_neutral_lbs_10_207_0_v1.0.0.pkl or "
           "SMPL_NEUTRAL.pkl) and point the body_model key of params at it, or use 'procedural'")
    if not path.is_file():
        raise DataError(f"body model file {path} does not exist", fix)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        elif path.suffix == ".pkl":
            with open(path, "rb") as fh:
                raw = _SafeUnpickler(fh, encoding="latin1").load()
        else:
            raise DataError(f"body model file {path} must end in .pkl or .npz", fix)
    except (pickle.UnpicklingError, ValueError, EOFError, OSError, ModuleNotFoundError) as exc:
        raise DataError(f"cannot read body model file {path}: {exc}", fix) from exc
    if not isinstance(raw, dict):
        raise DataError(f"body model file {path} holds a {type(raw).__name__}, not an SMPL model dict", fix)
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise DataError(f"body model file {path} lacks {missing} (is it an SMPL model?)", fix)
    data = {k: _to_array(raw[k]) for k in REQUIRED_KEYS}
    check_model_arrays(data, str(path))
    return data


def check_model_arrays(data: dict[str, np.ndarray], origin: str) -> None:
    """Shapes every SMPL-format model must have (24 joints, at least 10 shape directions)."""
    v = data["v_template"].shape[0]
    expected = {"v_template": (v, 3), "J_regressor": (24, v), "weights": (v, 24), "kintree_table": (2, 24)}
    for key, shape in expected.items():
        if data[key].shape != shape:
            raise DataError(f"{origin}: {key} has shape {data[key].shape}, expected {shape}",
                            "use an SMPL (24-joint) model file, not SMPL-H/SMPL-X")
    sd = data["shapedirs"]
    if sd.ndim != 3 or sd.shape[:2] != (v, 3) or sd.shape[2] < 10:
        raise DataError(f"{origin}: shapedirs has shape {sd.shape}, expected ({v}, 3, >=10)")
    if data["f"].ndim != 2 or data["f"].shape[1] != 3 or data["f"].max() >= v:
        raise DataError(f"{origin}: faces f have shape {data['f'].shape} or index past {v} vertices")

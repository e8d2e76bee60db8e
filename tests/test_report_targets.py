"""The paper targets registry: every GCL+ slot exists, provenance everywhere, bad entries rejected."""

from pathlib import Path

import pytest
import yaml

from genreid.errors import ConfigError
from genreid.report.targets import METRICS, REAL_DATASETS, load_targets, setting_name

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "genreid" / "report" / "targets.yaml"
UDA = {"market1501": ["from_dukemtmc"], "dukemtmc": ["from_market1501"],
       "msmt17": ["from_market1501", "from_dukemtmc"]}


def test_every_gcl_plus_slot_exists_and_is_unfilled_until_read():
    reg = load_targets(REGISTRY)
    expected = {ds: ["unsupervised", *UDA[ds]] for ds in REAL_DATASETS}
    assert reg.missing_slots("gcl_plus", expected) == []
    slots = [t for ds in expected for s in expected[ds] for t in reg.targets["gcl_plus"][ds][s].values()]
    assert len(slots) == 7 * len(METRICS)  # 3 unsupervised + 4 UDA directions
    assert all(t.value is None and t.provenance == "to read from the paper" and not t.checked for t in slots)


def test_gcl_numbers_match_the_spec_and_are_unverified():
    reg = load_targets(REGISTRY)
    got = {ds: (reg.lookup("gcl", ds, "unsupervised")["mAP"].value, reg.lookup("gcl", ds, "unsupervised")["R1"].value)
           for ds in REAL_DATASETS}
    assert got == {"market1501": (66.8, 87.3), "dukemtmc": (62.8, 82.9), "msmt17": (21.3, 45.7)}
    assert not any(t.checked for per_ds in reg.targets.values() for s in per_ds.values()
                   for m in s.values() for t in m.values())
    baseline = reg.lookup("baseline", "market1501", "unsupervised")
    assert (baseline["mAP"].value, baseline["R1"].value) == (82.1, 92.3)
    assert reg.lookup("untrained", "market1501", "unsupervised") == {}
    assert reg.lookup("gcl", "synthetic", "unsupervised") == {}


def test_every_number_has_provenance():
    raw = yaml.safe_load(REGISTRY.read_text())
    for method, per_ds in raw["targets"].items():
        for ds, settings in per_ds.items():
            for setting, metrics in settings.items():
                for metric, entry in metrics.items():
                    assert len(entry["provenance"]) > 10, f"{method}.{ds}.{setting}.{metric}"


def _write(tmp_path, mutate):
    raw = yaml.safe_load(REGISTRY.read_text())
    mutate(raw)
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("mutate, fragment", [
    (lambda r: r["targets"]["gcl"]["market1501"]["unsupervised"]["R5"].update(checked=True),
     "targets.gcl.market1501.unsupervised.R5"),
    (lambda r: r["targets"]["gcl"]["market1501"]["unsupervised"]["mAP"].update(value=166.8), "less than or equal"),
    (lambda r: r["targets"]["gcl"]["market1501"]["unsupervised"]["mAP"].pop("provenance"), "provenance"),
    (lambda r: r["targets"]["gcl"]["market1501"].update(from_market1501={}), "from_<another dataset>"),
    (lambda r: r["targets"]["gcl"]["market1501"]["unsupervised"].update(R20={"value": 1, "provenance": "xyz"}),
     "R20"),
    (lambda r: r["harness_methods"].update(gcl="gcl_v3"), "gcl_v3"),
])
def test_bad_entries_name_the_key(tmp_path, mutate, fragment):
    with pytest.raises(ConfigError) as info:
        load_targets(_write(tmp_path, mutate))
    assert fragment in str(info.value) and "targets.yaml" in str(info.value)


def test_missing_registry_is_a_user_error(tmp_path):
    with pytest.raises(ConfigError, match="report.targets"):
        load_targets(tmp_path / "nope.yaml")


def test_setting_names():
    assert setting_name(None) == "unsupervised"
    assert setting_name("dukemtmc") == "from_dukemtmc"

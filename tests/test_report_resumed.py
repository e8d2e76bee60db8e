"""Honest numbers: a run that resumed after an interruption is marked in the report."""

from types import SimpleNamespace

from genreid.report.report import _selection


def test_resumed_runs_are_marked_in_the_selection_table():
    runs = [SimpleNamespace(method="baseline", selection={"selected_on": "val_map", "selected_epoch": 4,
                                                          "last_epoch": 10, "resumed": True}),
            SimpleNamespace(method="gcl_plus", selection={"selected_on": "val_map", "selected_epoch": 3,
                                                          "last_epoch": 4, "resumed": False})]
    text = "\n".join(_selection([SimpleNamespace(dataset="synthetic", methods=runs)]))
    assert "| synthetic | baseline | validation mAP | 4 | 10 | **yes** |" in text
    assert "| synthetic | gcl_plus | validation mAP | 3 | 4 | no |" in text


def test_a_stage_one_imported_from_the_authors_is_named_in_the_selection_table():
    run = SimpleNamespace(method="baseline", selection={"selected_on": "authors_weights", "selected_epoch": None,
                                                        "last_epoch": None, "resumed": False})
    lines = "\n".join(_selection([SimpleNamespace(dataset="market1501", methods=[run])]))
    assert "| market1501 | baseline | authors' stage-1 weights | - | - | no |" in lines

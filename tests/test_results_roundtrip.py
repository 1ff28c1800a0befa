"""``Results`` owns both directions of the results document: every committed results file reads back and writes out
byte for byte, documents built from metric states read back equal, and generated documents are accepted when
well-formed and refused (naming the field) when one known defect is put in."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from occbench.errors import FormatError
from occbench.metrics import PROTOCOLS, FrameArrays, SSCMetric
from occbench.results import DATASETS, RANGES, SPLITS, Results, dumps

REPO = Path(__file__).resolve().parents[1]
RESULTS = sorted((REPO / "leaderboards" / "results").glob("*.json"))
ABLATIONS = sorted((REPO / "leaderboards" / "ablations").glob("*.json"))
AUTOLABEL = sorted((REPO / "leaderboards" / "autolabel").glob("*.json"))
FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _claims_the_schema(path: Path) -> bool:
    doc = json.loads(path.read_bytes())
    return isinstance(doc, dict) and doc.get("schema") == "occbench.results"


def test_the_committed_files_are_found():
    assert len(RESULTS) >= 10 and all(_claims_the_schema(p) for p in RESULTS)
    assert sum(_claims_the_schema(p) for p in ABLATIONS) >= 12
    assert AUTOLABEL


@pytest.mark.parametrize("path", RESULTS + [p for p in ABLATIONS if _claims_the_schema(p)], ids=lambda p: p.name)
def test_a_committed_results_file_round_trips_byte_for_byte(path):
    raw = path.read_bytes()
    doc = json.loads(raw)
    res = Results.from_dict(doc, source=path)
    assert res.to_dict() == doc
    assert list(res.to_dict()) == list(doc)  # key order too: the bytes below depend on it
    assert res.to_json() == raw
    assert Results.read(path).to_json() == raw


@pytest.mark.parametrize("path", [p for p in ABLATIONS if not _claims_the_schema(p)], ids=lambda p: p.name)
def test_the_other_ablation_files_are_refused_as_results(path):
    with pytest.raises(FormatError, match=r"schema (null|\"[^\"]*\") \(not 'occbench.results'\)"):
        Results.read(path)


@pytest.mark.parametrize("path", AUTOLABEL, ids=lambda p: p.name)
def test_a_committed_autolabel_file_round_trips_byte_for_byte(path):
    raw = path.read_bytes()
    runs = json.loads(raw)
    assert isinstance(runs, list) and runs
    back = [Results.from_dict(d, kind="autolabel", source=path).to_dict() for d in runs]
    assert dumps(back) == raw
    # an autolabel run is not an evaluation's results file (no method, no single split): the leaderboard refuses it
    with pytest.raises(FormatError, match="header.method missing"):
        Results.from_dict(runs[0], source=path)


def test_an_evaluation_file_is_not_an_autolabel_run():
    with pytest.raises(FormatError, match="header.autolabel missing"):
        Results.from_dict(json.loads(RESULTS[0].read_bytes()), kind="autolabel")


def test_built_results_read_back_equal():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 20, (256, 256, 32)).astype(np.uint8)
    pred = np.where(rng.random(gt.shape) < 0.8, gt, rng.integers(0, 20, gt.shape)).astype(np.uint8)
    m = SSCMetric("semantickitti-ssc")
    m.update_frame(pred, FrameArrays(gt))
    header = {"dataset": {"dataset": "semantickitti", "split": "val", "onboard": None}, "method": {"name": "x"}}
    built = Results.build(PROTOCOLS["semantickitti-ssc"], {"ssc": m, "distance": m.distance_curve()}, header)
    doc = json.loads(built.to_json())
    assert Results.from_dict(doc) == built and Results.from_dict(doc).to_json() == built.to_json()
    # the scores are those of the metric, computed independently here from the two grids (SemanticKITTI's rule)
    occ_p, occ_g = pred > 0, gt > 0
    iou = (occ_p & occ_g).sum() / (occ_p | occ_g).sum()
    assert math.isclose(built.ssc(51.2)["iou"], float(iou), rel_tol=1e-12)
    assert built.method == "x" and built.dataset == "semantickitti" and built.split == "val" and built.partial is None


def test_results_do_not_change_through_what_they_were_made_from_or_return():
    header = {"method": {"name": "a"}}
    res = Results(protocol={}, header=header, metrics={})
    header["method"]["name"] = "b"
    res.to_dict()["header"]["method"]["name"] = "c"
    assert res.method == "a"


# -- generated documents -------------------------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,15}", fullmatch=True)
FRACTION = st.one_of(st.none(), st.floats(0.0, 1.0), st.sampled_from([0, 1]))
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"), max_size=40)


@st.composite
def documents(draw) -> dict:
    """A well-formed results document of ``occbench evaluate``'s shape, its names and numbers drawn."""
    classes = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))

    def scores():
        per = draw(st.dictionaries(st.sampled_from(classes), FRACTION))
        return {"iou": draw(FRACTION), "miou": draw(FRACTION), "per_class_iou": per, "n": draw(st.integers(0))}

    header = {
        "occbench_version": draw(TEXT),
        "dataset": {
            "dataset": draw(st.sampled_from(DATASETS)),
            "split": draw(st.sampled_from(SPLITS)),
            "onboard": draw(st.one_of(st.none(), NAMES)),
            "generator": draw(st.dictionaries(NAMES, st.one_of(st.integers(), st.none(), TEXT), max_size=3)),
        },
        "method": {"name": draw(NAMES), "options": draw(st.dictionaries(TEXT, st.integers(), max_size=3))},
        "command": draw(st.one_of(st.none(), TEXT)),
    }
    if draw(st.booleans()):
        n = draw(st.integers(0, 100))
        header["partial"] = {"frames": n, "frames_in_split": n + draw(st.integers(1, 100)), "max_frames": n or None}
    metrics: dict = {"ssc": {r: scores() for r in RANGES}}
    if draw(st.booleans()):
        metrics["city_map"] = scores()
    if draw(st.booleans()):
        metrics["temporal_consistency"] = {
            "pair_agreement": draw(FRACTION),
            "modal_agreement": draw(FRACTION),
            "all_agree": draw(FRACTION),
            "n_static_voxels": draw(st.integers(0)),
        }
    return {
        "schema": "occbench.results",
        "schema_version": 1,
        "units": "fraction",
        "protocol": {"id": draw(NAMES), "version": "1.0", "class_names": classes},
        "header": header,
        "metrics": metrics,
    }


def _put(doc: dict, path: tuple[str, ...], value) -> None:
    *where, last = path
    cur = doc
    for k in where:
        cur = cur[k]
    if value is DELETE:
        del cur[last]
    else:
        cur[last] = value


DELETE = object()
R = RANGES[-1]
# (where the defect goes, what is put there, what the refusal names)
DEFECTS = [
    (("metrics", "ssc", R, "iou"), 1.5, f"metrics.ssc.{R}.iou"),
    (("metrics", "ssc", R, "miou"), -0.1, f"metrics.ssc.{R}.miou"),
    (("metrics", "ssc", R, "iou"), "0.5", f"metrics.ssc.{R}.iou"),
    (("metrics", "ssc", R, "per_class_iou"), {"not a class": 0.5}, "not protocol.class_names"),
    (("metrics", "ssc", R), DELETE, f"metrics.ssc.{R} missing"),
    (("metrics", "ssc"), DELETE, "metrics.ssc missing"),
    (("header", "dataset", "dataset"), "../x", "header.dataset.dataset"),
    (("header", "dataset", "split"), "val/../../x", "header.dataset.split"),
    (("header", "dataset", "onboard"), DELETE, "header.dataset.onboard missing"),
    (("header", "dataset", "onboard"), "a b", "header.dataset.onboard"),
    (("header", "method", "name"), "<script>", "header.method.name"),
    (("header", "method"), DELETE, "header.method missing"),
    (("header", "command"), "a\nb", "header.command"),
    (("header", "partial"), {"frames": "3", "frames_in_split": 9}, "header.partial"),
    (("protocol", "class_names"), "car", "protocol.class_names"),
    (("protocol", "id"), "a|b", "protocol.id"),
    (("units",), "percent", "units"),
    (("extra",), 1, "unknown key"),
    (("schema_version",), 2, "schema_version 2"),
    (("schema",), "other", "schema \"other\""),
    (("header",), [], "header is a list"),
]


@FUZZ
@given(doc=documents())
def test_a_well_formed_document_is_accepted_and_round_trips(doc):
    raw = dumps(doc)
    res = Results.from_dict(json.loads(raw))
    assert res.to_dict() == doc and res.to_json() == raw
    assert Results.problems(doc) == []


@FUZZ
@given(doc=documents(), defect=st.sampled_from(DEFECTS))
def test_a_document_with_one_defect_is_refused_naming_it(doc, defect):
    where, value, named = defect
    _put(doc, where, value)
    with pytest.raises(FormatError) as e:
        Results.from_dict(doc, source="drawn.json")
    assert str(e.value).startswith("drawn.json: expected an occbench results file") and named in str(e.value)


@pytest.mark.parametrize("doc", [None, [], "results", 1, {}])
def test_what_is_not_an_object_or_claims_no_schema_is_refused(doc):
    with pytest.raises(FormatError, match="expected an occbench results file"):
        Results.from_dict(doc)

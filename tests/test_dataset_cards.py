"""Dataset files (occbench/datasets/cards/*.json): what the code derives from them, their checks, and a dataset
added with a loader module and a data file only."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10: the test extras install tomli
    import tomli as tomllib

from occbench import dataset_cards as dc
from occbench.errors import FormatError, MissingDataError, UnknownNameError
from occbench.testing import make_semantickitti_tree, submission_from_onboard

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "occbench" / "datasets" / "cards"

# The values the code held as literals before the dataset files (the oracle).
DRIVE = "2013_05_28_drive_{:04d}_sync"
OLD_SEMANTICKITTI_SPLITS = {
    "train": ["00", "01", "02", "03", "04", "05", "06", "07", "09", "10"],
    "val": ["08"],
    "test": [f"{i:02d}" for i in range(11, 22)],
}
OLD_KITTI360_SPLITS = {
    "train": [DRIVE.format(i) for i in (0, 2, 3, 4, 5, 7, 10)],
    "val": [DRIVE.format(6)],
    "test": [DRIVE.format(9)],
}
OLD_DATASET_NAMES = ("mini", "semantickitti", "sscbench-kitti360")
OLD_RESULTS_DATASETS = ("occbench-mini", "semantickitti", "sscbench-kitti360")
OLD_LEADERBOARD_TITLES = {
    "occbench-mini": "occbench-mini (SYNTHETIC)",
    "semantickitti": "SemanticKITTI",
    "sscbench-kitti360": "SSCBench-KITTI360",
}
OLD_AUTOLABEL_TITLES = {"mini": "occbench-mini (SYNTHETIC)", "semantickitti": "SemanticKITTI"}
OLD_PROTOCOL_ARGS = {
    "semantickitti-ssc": dict(
        label_map="semantickitti",
        id="semantickitti-ssc",
        version="1.0",
        iou_epsilon=1e-15,
        completion_rule="semantic-kitti-api",
        invalid_policy="mask-all",
        reference="PRBonn/semantic-kitti-api evaluate_completion.py + auxiliary/np_ioueval.py (a9c749e); "
        "ranges: VoxFormer semantic_kitti_dataset_stage2.py get_gt_info",
    ),
    "sscbench-kitti360-ssc": dict(
        label_map="kitti360",
        id="sscbench-kitti360-ssc",
        version="1.0",
        iou_epsilon=1e-5,
        completion_rule="sscmetrics",
        invalid_policy="mask-empty-only",
        reference="ai4ce/SSCBench method/MonoScene monoscene/loss/sscMetrics.py + preprocess.py (9e767e1); "
        "ranges: ahayler/s4c evaluate_model_sscbench.py",
    ),
}
OLD_HEADER_SUMMARY = {  # a few fields of each header, written out (the full headers are compared with _make below)
    "semantickitti-ssc": {
        "num_classes": 20,
        "iou_epsilon": 1e-15,
        "pr_epsilon": 1.1920928955078125e-07,
        "ranges": [12.8, 25.6, 51.2],
        "ignore_index": 255,
        "distance_bin_width": 1.6,
        "ignore_invalid_policy": "a voxel is evaluated iff its ground truth != 255 and it is not invalid",
    },
    "sscbench-kitti360-ssc": {
        "num_classes": 19,
        "iou_epsilon": 1e-5,
        "pr_epsilon": 1.1920928955078125e-07,
        "ranges": [12.8, 25.6, 51.2],
        "ignore_index": 255,
        "distance_bin_width": 1.6,
        "ignore_invalid_policy": "a voxel is evaluated iff its ground truth != 255 and "
        "not (invalid and ground truth empty)",
    },
}


# (a) each shipped file against the code


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.json")), ids=lambda p: p.stem)
def test_each_shipped_dataset_file_matches_its_loader(path):
    from occbench import results as results_module
    from occbench.datasets import DATASETS, SSCDataset
    from occbench.metrics.protocol import PROTOCOLS

    _, card = dc.read_card(path)
    loaded = dc.dataset_card(card.name)
    assert replace(card, label_map=loaded.label_map) == loaded
    cls = DATASETS[card.name]
    assert issubclass(cls, SSCDataset)
    assert (cls.name, cls.protocol, cls.synthetic) == (card.results_name, card.protocol_id, card.synthetic)
    assert PROTOCOLS[card.protocol_id].label_map == dc.dataset_card(card.name).label_map
    if card.splits is not None:
        assert cls.splits == card.split_lists()
    assert results_module.SAFE_NAME.fullmatch(card.results_name)
    assert set(card.leaderboard_splits) <= set(results_module.SPLITS)
    # shipped by a plain (non-editable) install: a package-data pattern of pyproject.toml matches it
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["occbench"]
    rel = path.relative_to(REPO / "occbench").as_posix()
    assert any(fnmatch.fnmatch(rel, p) and rel.count("/") == p.count("/") for p in patterns), rel


def test_the_allowed_split_names_are_those_of_results_files():
    from occbench import results as results_module

    assert dc.SPLIT_NAMES == results_module.SPLITS


def test_the_dataset_files_import_nothing_heavy():
    code = (
        "import sys\nfrom occbench.dataset_cards import dataset_cards, dataset_names\ndataset_cards()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch', 'occbench')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [
        "['occbench',",
        "'occbench.dataset_cards',",
        "'occbench.errors',",
        "'occbench.regular_files',",
        "'occbench.version']",
    ]


# (b) the derived objects equal the literals the code held before


def test_derived_names_equal_the_former_literals():
    from occbench import leaderboard
    from occbench import results as results_module
    from occbench.cli import DATASET_NAMES
    from occbench.cli import autolabel as autolabel_command
    from occbench.datasets import (
        DATASETS,
        OccbenchMini,
        SemanticKITTI,
        SSCBenchKITTI360,
        semantickitti,
        sscbench_kitti360,
    )
    from occbench.labels import AVAILABLE

    assert DATASET_NAMES == OLD_DATASET_NAMES and type(DATASET_NAMES) is tuple
    assert DATASETS == {"mini": OccbenchMini, "semantickitti": SemanticKITTI, "sscbench-kitti360": SSCBenchKITTI360}
    assert list(DATASETS) == list(OLD_DATASET_NAMES)
    assert results_module.DATASETS == OLD_RESULTS_DATASETS and type(results_module.DATASETS) is tuple
    assert list(leaderboard.DATASET_TITLES.items()) == list(OLD_LEADERBOARD_TITLES.items())
    assert list(autolabel_command.DATASET_TITLES.items()) == list(OLD_AUTOLABEL_TITLES.items())
    assert dc.dataset_names(trainable=True) == ("mini", "semantickitti")
    assert dc.dataset_names(synthetic=False) == ("semantickitti", "sscbench-kitti360")
    for mod, old in ((semantickitti, OLD_SEMANTICKITTI_SPLITS), (sscbench_kitti360, OLD_KITTI360_SPLITS)):
        assert mod.SPLITS == old and list(mod.SPLITS) == list(old)
        assert all(type(v) is list for v in mod.SPLITS.values())
    assert SemanticKITTI.splits is semantickitti.SPLITS and OccbenchMini.splits is semantickitti.SPLITS
    assert [(c.name, c.protocol, c.synthetic) for c in DATASETS.values()] == [
        ("occbench-mini", "semantickitti-ssc", True),
        ("semantickitti", "semantickitti-ssc", False),
        ("sscbench-kitti360", "sscbench-kitti360-ssc", False),
    ]
    assert AVAILABLE == ("semantickitti", "kitti360")


def test_protocols_equal_the_former_definitions():
    from occbench.metrics.protocol import PROTOCOLS, _make

    assert list(PROTOCOLS) == list(OLD_PROTOCOL_ARGS)
    for pid, kw in OLD_PROTOCOL_ARGS.items():
        old = _make(**kw)
        assert PROTOCOLS[pid] == old
        assert json.dumps(PROTOCOLS[pid].header()) == json.dumps(old.header())
        h = PROTOCOLS[pid].header()
        assert {k: h[k] for k in OLD_HEADER_SUMMARY[pid]} == OLD_HEADER_SUMMARY[pid]
        assert h["reference"] == kw["reference"]


def test_the_committed_results_files_carry_the_shipped_protocol_headers():
    from occbench.metrics.protocol import PROTOCOLS

    seen = 0
    for p in sorted((REPO / "leaderboards" / "results").glob("*.json")):
        doc = json.loads(p.read_text())
        proto = doc.get("protocol", {})
        if proto.get("id") in PROTOCOLS and proto.get("version") == PROTOCOLS[proto["id"]].version:
            expected = PROTOCOLS[proto["id"]].header()
            assert {k: proto[k] for k in expected if k in proto} == {k: v for k, v in expected.items() if k in proto}, p
            seen += 1
    assert seen


def test_open_dataset_requires_a_root_where_the_file_says_so():
    from occbench.datasets import open_dataset

    for name in ("semantickitti", "sscbench-kitti360"):
        with pytest.raises(ValueError, match="--root is required"):
            open_dataset(name)
    with pytest.raises(UnknownNameError):
        open_dataset("kitti")


# the checks of a dataset file


def _card(**over):
    doc = json.loads((SHIPPED / "semantickitti.json").read_text())
    doc.update(over)
    return doc


def _write(folder: Path, doc: dict, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{name or doc['name']}.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize(
    "over, match",
    [
        ({"title": 3}, "'title'"),
        ({"format_version": 2}, "'format_version'"),
        ({"loader": "no colon"}, "'loader'"),
        ({"synthetic": "no"}, "'synthetic'"),
        ({"results_name": "a/b"}, "'results_name'"),
        ({"splits": {"dev": ["00"]}}, "'splits'"),
        ({"splits": {"val": ["08", "08"]}}, "'splits' 'val'"),
        ({"leaderboard_splits": ["train"], "splits": {"val": ["08"]}}, "'leaderboard_splits'"),
        ({"colour": "red"}, "unknown colour"),
        ({"default_onboard": "a b"}, "'default_onboard'"),
        ({"protocol": {"id": "x"}}, "no version"),
        ({"protocol": {**_card()["protocol"], "completion_rule": "mine"}}, "'completion_rule'"),
        ({"protocol": {**_card()["protocol"], "label_map": "nuscenes"}}, "'label_map'"),
    ],
)
def test_a_bad_dataset_file_is_refused_naming_the_file(tmp_path, over, match):
    p = _write(tmp_path, _card(**over))
    with pytest.raises(FormatError, match=match) as e:
        dc.read_card(p)
    assert e.value.path == p


def test_the_name_must_be_the_files_name(tmp_path):
    p = _write(tmp_path, _card(), name="other")
    with pytest.raises(FormatError, match="the file's name"):
        dc.read_card(p)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(FormatError, match="a JSON dataset file"):
        dc.read_card(tmp_path / "broken.json")


@pytest.fixture
def extra_folder(tmp_path, monkeypatch):
    """$OCCBENCH_DATASET_PATH set to a folder for this test; the cache is read again before and after."""
    folder = tmp_path / "datasets"
    folder.mkdir()
    monkeypatch.setenv(dc.PATH_ENV, str(folder))
    dc.dataset_cards.cache_clear()
    yield folder
    monkeypatch.delenv(dc.PATH_ENV)
    dc.dataset_cards.cache_clear()


@pytest.mark.parametrize(
    "doc, match",
    [
        (_card(name="kitti2"), "'results_name' not used by another"),  # semantickitti's results name again
        (_card(name="kitti2", results_name="kitti2"), "defined by one dataset file only"),  # its protocol again
        (_card(name="kitti2", results_name="kitti2", protocol="nope-ssc"), "'protocol': the id of a protocol"),
        (_card(), "a dataset name not used by another"),
    ],
)
def test_files_that_clash_with_the_shipped_ones_are_refused(extra_folder, doc, match):
    p = _write(extra_folder, doc)
    assert list(dc.dataset_cards()) == ["mini", "semantickitti", "sscbench-kitti360"]  # left out; the others work
    (problem,) = dc.card_problems()
    assert problem.startswith(f"{p}: ") and re.search(match, problem)


def test_an_extra_folder_that_does_not_exist_is_named(extra_folder, monkeypatch):
    monkeypatch.setenv(dc.PATH_ENV, str(extra_folder / "nowhere"))
    assert "mini" in dc.dataset_cards()
    assert len(dc.card_problems()) == 1 and "nowhere" in dc.card_problems()[0]
    with pytest.raises(MissingDataError, match="nowhere"):
        dc.folders()


def test_a_protocol_may_be_named_by_id(extra_folder):
    _write(extra_folder, _card(name="kitti2", results_name="kitti2", protocol="sscbench-kitti360-ssc"))
    assert dc.dataset_card("kitti2").label_map == "kitti360"
    assert dc.dataset_names()[-1] == "kitti2"
    with pytest.raises(UnknownNameError, match="available: mini, semantickitti, sscbench-kitti360, kitti2"):
        dc.dataset_card("kitti3")


# (c) a dataset added with a loader module and a data file, outside the repository

FAKE_LOADER = '''
from occbench.dataset_cards import dataset_card
from occbench.datasets.semantickitti import SemanticKITTI

CARD = dataset_card("fake-kitti")


class FakeKITTI(SemanticKITTI):
    """SemanticKITTI's layout under another name."""

    name = CARD.results_name
    protocol = CARD.protocol_id
    splits = CARD.split_lists()
'''

FAKE_CHECK = '''
import json, sys
from pathlib import Path

root, sub, out = sys.argv[1:4]
from occbench.cli import DATASET_NAMES, main
assert DATASET_NAMES[-1] == "fake-kitti", DATASET_NAMES
sys.argv = ["occbench", "evaluate", "--dataset", "fake-kitti", "--root", root, "--predictions", sub,
            "-q", "-j", "1", "--no-city", "--no-consistency", "-o", out + "/fake.json"]
try:
    main()
except SystemExit as e:
    assert not e.code, e.code

from occbench import leaderboard
from occbench import results as results_module
from occbench.datasets import DATASETS, open_dataset
from occbench.metrics.protocol import PROTOCOLS

ds = open_dataset("fake-kitti", root, split="val", onboard="noisy")
print("loader", type(ds).__name__, ds.sequence_names, DATASETS["fake-kitti"].__name__)
try:
    open_dataset("fake-kitti")
except ValueError as e:
    print("no-root", e)
print("protocol", PROTOCOLS["fake-ssc"].tag, PROTOCOLS["fake-ssc"].iou_epsilon)
print("schema", results_module.DATASETS[-1], leaderboard.DATASET_TITLES["fake-kitti"])
doc = results_module.Results.read(Path(out) / "fake.json").to_dict()
print("results", doc["header"]["dataset"]["dataset"], doc["protocol"]["id"])
(Path(out) / "reported").mkdir()
pages = leaderboard.render_pages(Path(out), Path(out) / "reported")
print("pages", sorted(pages))
print("title", pages["fake-kitti-val.md"].splitlines()[0])
'''


def test_a_dataset_added_by_a_data_file_and_a_loader_appears_everywhere(tmp_path):
    tree = make_semantickitti_tree(tmp_path / "kitti", {"08": 12}, onboard={"noisy": 0.2}, seed=3)
    sub = submission_from_onboard(tree, "noisy", tmp_path / "model")
    plugin = tmp_path / "plugin"
    (plugin / "datasets").mkdir(parents=True)
    (plugin / "fake_loader.py").write_text(FAKE_LOADER)
    _write(
        plugin / "datasets",
        _card(
            name="fake-kitti",
            results_name="fake-kitti",
            title="Fake KITTI",
            loader="fake_loader:FakeKITTI",
            protocol={**_card()["protocol"], "id": "fake-ssc", "version": "0.1", "iou_epsilon": 1e-6},
            splits={"val": ["08"]},
            leaderboard_splits=["val"],
            trainable=False,
        ),
    )
    out = tmp_path / "results"
    out.mkdir()
    env = {
        **os.environ,
        dc.PATH_ENV: str(plugin / "datasets"),
        "OCCBENCH_DATA": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([str(plugin)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
    }
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FAKE_CHECK), str(tree), str(sub), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert lines["loader"] == "FakeKITTI ['08'] FakeKITTI"
    assert "--root is required for dataset 'fake-kitti'" in lines["no-root"]
    assert lines["protocol"] == "fake-ssc@0.1 1e-06"
    assert lines["schema"] == "fake-kitti Fake KITTI"
    assert lines["results"] == "fake-kitti fake-ssc"
    assert lines["pages"] == "['fake-kitti-val.md', 'semantickitti-val.md', 'sscbench-kitti360-test.md']"
    assert lines["title"] == "# Leaderboard: Fake KITTI, split `val`"
    # and the command line offers it
    r = subprocess.run(
        [sys.executable, "-m", "occbench.cli", "evaluate", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "fake-kitti" in r.stdout, r.stdout + r.stderr


def test_the_default_onboard_model_comes_from_the_dataset_file(tmp_path):
    from click.testing import CliRunner

    from occbench.cli import main
    from occbench.cli.options import default_onboard
    from occbench.datasets.mini import DEFAULT_ONBOARD

    assert dc.dataset_card("mini").default_onboard == DEFAULT_ONBOARD == "voxformer-sim"
    assert dc.dataset_card("semantickitti").default_onboard is None
    assert default_onboard("mini", None) == "voxformer-sim" and default_onboard("mini", "sscnet-sim") == "sscnet-sim"
    assert default_onboard("semantickitti", None) is None
    r = CliRunner().invoke(main, ["evaluate", "--help"])
    assert "mini: voxformer-sim" in " ".join(r.output.split())

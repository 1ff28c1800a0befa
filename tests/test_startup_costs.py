"""What a command pays before its first frame: numba's start-up without scipy or yaml, its runtime loaded, entry
points read once, poses parsed in one pass (each checked against what it replaces)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from occbench.entry_points import PluginRegistry
from occbench.errors import FormatError
from occbench.io.kitti import parse_numbers, read_number_rows, read_text_lines
from occbench.testing import python_json

REPO = Path(__file__).resolve().parents[1]
SEQ08_POSES = REPO / "tests" / "data" / "kitti-odometry" / "sequences" / "08" / "poses.txt"


def _python(code: str) -> dict:
    return python_json(code, cwd=REPO)


_CORRELATE = (
    "import numba\n"
    "@numba.njit\n"
    "def corr(a, b):\n"
    "    return np.correlate(a, b)\n"
    "a, b = np.linspace(0, 1, 50) ** 2, np.linspace(2, 3, 7) ** 3\n"
    "corr_hex = [float(x).hex() for x in corr(a, b)]\n"
)


_KERNELS = (
    "import json, sys\n"
    # numba's implementation modules that only a refresh of its registries (or a kernel's own code) imports
    "_LOOKED_FOR = ('numba.np.arraymath', 'numba.np.arrayobj', 'numba.cpython.unicode')\n"
    "import numpy as np\n"
    "from occbench.metrics import CityMapMetric, FrameArrays, SSCMetric, TemporalConsistency\n"
    "g = np.zeros((256, 256, 32), np.uint8); g[:, :, :3] = 9; g[:40, :50, 3:9] = 15\n"
    "ms = [SSCMetric(), CityMapMetric(), TemporalConsistency()]\n"
    "for i in range(3):\n"
    "    pose = np.eye(4); pose[0, 3] = 0.5 * i\n"
    "    for m in ms:\n"
    "        m.update_frame(np.roll(g, i, 0), FrameArrays(g, pose=pose))\n"
    "summary = repr([m.compute() for m in ms])\n"
    "loaded = sorted(k for k in sys.modules if k in _LOOKED_FOR or k.startswith('scipy.linalg'))\n"
)
_EVERY_KERNEL = (  # the kernels _KERNELS does not call: the SSC pass on raw ids, records gathered
    "from occbench.metrics import _kernel, _worldkernels as K\n"
    "_kernel.warm_up()\n"
    "o = np.zeros(3, np.uint32)\n"
    "K.gather_records(np.array([1, 0]), np.array([0, 2]), np.array([2, 1]), np.arange(3, dtype=np.uint32), o)\n"
    "gathered = o.tolist()\n"
    "loaded = sorted(k for k in sys.modules if k in _LOOKED_FOR or k.startswith('scipy.linalg'))\n"
)


def test_the_kernels_load_without_numbas_registries_or_scipy_and_numba_still_probes_blas_when_asked(tmp_path):
    """occbench's kernels, compiled into an empty cache and then loaded from it by another process, give the same
    numbers; neither process imports scipy (numba's BLAS probe is deferred), and the one that loads imports none of
    numba's implementation registries (``numba.np.arraymath`` stands for them), nor numba's array and string
    implementations (``numba.np.arrayobj``, ``numba.cpython.unicode``: the kernels make no arrays, views or
    messages of their own). Numba code that reads the probe (``np.correlate``, compiled afterwards) gets numba's
    own answer and the same numbers as in a process where occbench was never imported."""
    import os

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    after = (
        _EVERY_KERNEL
        + _CORRELATE  # compiled first: its refresh imports numba.np.arraymath where the kernels' load did not
        + "import numba.np.arraymath as am\n"
        "from numba.np.linalg import ensure_blas\n"
        "try:\n"
        "    ensure_blas(); expected = True\n"
        "except ImportError:\n"
        "    expected = False\n"
        "print(json.dumps({'loaded': loaded, 'summary': summary, 'gathered': gathered, 'probe': bool(am._HAVE_BLAS),\n"
        "                  'expected': expected, 'probe_type': type(am._HAVE_BLAS).__name__, 'corr': corr_hex,\n"
        "                  'own_probe': am.ensure_blas is ensure_blas}))\n"
    )
    compiled = python_json(_KERNELS + after, cwd=REPO, env=env)
    assert list((tmp_path / "numba-cache").rglob("*.nbi"))  # the first process compiled into the empty cache
    loaded = python_json(_KERNELS + after, cwd=REPO, env=env)
    plain = _python("import json\nimport numpy as np\n" + _CORRELATE + "print(json.dumps({'corr': corr_hex}))\n")
    assert "numba.np.arraymath" in compiled["loaded"]  # imported by the compile, with the probe deferred
    assert not [m for m in compiled["loaded"] if m.startswith("scipy")]
    assert loaded["loaded"] == []  # no registries, no scipy, no array or string implementations
    assert loaded["summary"] == compiled["summary"] and "miou" in compiled["summary"]
    assert loaded["gathered"] == compiled["gathered"] == [2, 0, 1]
    for out in (compiled, loaded):
        assert out["probe_type"] == "DeferredProbe"
        assert out["probe"] == out["expected"] is True  # scipy is a declared dependency
        assert out["corr"] == plain["corr"]
        assert out["own_probe"]  # numba's own check is back in place once the module is imported


def test_other_packages_cached_functions_load_as_numba_loads_them(tmp_path):
    """Only functions of occbench's modules are loaded without numba's registries: another module's cached
    function, loaded from the cache after occbench's kernels, makes numba refresh its registries as it always does
    (``numba.np.polynomial.polynomial_core`` stands for them: only a refresh imports it)."""
    import os

    (tmp_path / "theirs.py").write_text(
        "import numba\n\n\n@numba.njit(cache=True)\ndef total(a):\n    return a[0] + a[-1]\n"
    )
    # occbench's kernels from the checkout's own cache (compiled once for the whole suite), theirs beside theirs.py
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = str(tmp_path)
    code = _KERNELS + (
        "import theirs\n"
        "t = int(theirs.total(np.arange(10)))\n"
        "refreshed = 'numba.np.polynomial.polynomial_core' in sys.modules\n"
        "print(json.dumps({'before': loaded, 'total': t, 'after': refreshed}))\n"
    )
    python_json(code, cwd=REPO, env=env)  # compiles theirs (and occbench's kernels where not cached yet)
    out = python_json(code, cwd=REPO, env=env)
    assert out == {"before": [], "total": 9, "after": True}


_RUNTIME = (
    "import json, sys\n"
    "from numba.core import codegen\n"
    "compiled = []\n"
    "_finalize = codegen.CPUCodeLibrary.finalize\n"
    "def finalize(self):\n"
    "    compiled.append(self.name)\n"
    "    return _finalize(self)\n"
    "codegen.CPUCodeLibrary.finalize = finalize\n"
    "import numpy as np\n"
    "from occbench.metrics import FrameArrays, SSCMetric\n"
    "g = np.zeros((256, 256, 32), np.uint8); g[:, :, :3] = 9; g[:40, :50, 3:9] = 15\n"
    "m = SSCMetric()\n"
    "m.update_frame(np.roll(g, 1, 0), FrameArrays(g))\n"
    "summary = repr(m.compute())\n"
    "before = list(compiled)\n"
    "import numba\n"
    "@numba.njit\n"
    "def squares(n):\n"
    "    a = np.zeros(n, np.int64)\n"  # allocates: linked against the runtime's library
    "    for i in range(n):\n"
    "        a[i] = i * i\n"
    "    return a\n"
    "print(json.dumps({'compiled': before, 'summary': summary, 'squares': squares(5).tolist()}))\n"
)


def test_numbas_runtime_is_loaded_from_its_object_code_once_compiled(tmp_path):
    """The first process that loads occbench's kernels from an empty cache compiles numba's runtime and keeps its
    object code beside them; the next one loads it and compiles nothing before its first frame. Both give the same
    numbers, and a function compiled afterwards (it allocates: linked against the runtime) runs. A file whose
    contents do not match their hash is not loaded: the runtime is compiled again and the file written anew."""
    import os

    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    first = python_json(_RUNTIME, cwd=REPO, env=env)
    files = list(cache.rglob("occbench-nrt-*.nrtobj"))
    assert len(files) == 1 and first["compiled"][0] == "nrt"  # compiled before any kernel, as numba does
    second = python_json(_RUNTIME, cwd=REPO, env=env)
    assert second["compiled"] == []  # the runtime from its object code, the kernels from numba's cache
    data = bytearray(files[0].read_bytes())
    data[-1] ^= 0xFF  # one bit flipped in the bitcode
    files[0].write_bytes(bytes(data))
    third = python_json(_RUNTIME, cwd=REPO, env=env)
    assert third["compiled"] == ["nrt"]  # not loaded: compiled, and written again
    assert python_json(_RUNTIME, cwd=REPO, env=env)["compiled"] == []
    for out in (first, second, third):
        assert out["summary"] == first["summary"] and "miou" in out["summary"]
        assert out["squares"] == [0, 1, 4, 9, 16]


_NUMBA_CONFIG = (
    "import json, sys\n"
    "{first}\n"
    "import numba.core.config as config\n"
    "state = {{'scheme': config.COLOR_SCHEME, 'yaml': 'yaml' in sys.modules, 'scipy': 'scipy' in sys.modules}}\n"
    "with open('.numba_config.yaml', 'w') as f:\n"
    "    f.write('color_scheme: blue_bg\\n')\n"
    "config.reload_config()\n"
    "state['reloaded'] = config.COLOR_SCHEME\n"
    "print(json.dumps(state))\n"
)


@pytest.mark.parametrize("config_file", [False, True])
def test_numba_is_imported_without_yaml_and_scipy_and_reads_its_configuration_as_it_does_alone(tmp_path, config_file):
    """Where the working folder holds no ``.numba_config.yaml``, occbench's kernels import numba without ``yaml``
    and ``scipy``, which numba's own import brings; with one, numba reads it with ``yaml`` as always. Either way
    numba's configuration is what it is in a process without occbench, and a configuration file written afterwards
    is read by numba's ``reload_config()`` as numba alone reads it."""
    import importlib.util
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env = {k: v for k, v in env.items() if not k.startswith("NUMBA_") or k == "NUMBA_CACHE_DIR"}
    out = {}
    for who, first in (("occbench", "from occbench.metrics import SSCMetric"), ("numba", "import numba")):
        folder = tmp_path / who
        folder.mkdir()
        if config_file:
            (folder / ".numba_config.yaml").write_text("color_scheme: light_bg\n")
        out[who] = python_json(_NUMBA_CONFIG.format(first=first), cwd=folder, env=env)
    have_yaml = importlib.util.find_spec("yaml") is not None
    assert out["numba"]["yaml"] == have_yaml and out["numba"]["scipy"]  # what numba's import brings by itself
    scheme = "light_bg" if config_file and have_yaml else "no_color"
    assert out["occbench"]["scheme"] == out["numba"]["scheme"] == scheme
    assert out["occbench"]["reloaded"] == out["numba"]["reloaded"] == ("blue_bg" if have_yaml else "no_color")
    if config_file:
        assert out["occbench"]["yaml"] == have_yaml
    else:
        assert not out["occbench"]["yaml"] and not out["occbench"]["scipy"]


def test_deferred_probe_runs_once():
    from occbench._numba_startup import DeferredProbe

    calls = []
    flag = DeferredProbe(lambda: calls.append(1) or True)
    assert "not run" in repr(flag) and not calls
    assert flag and flag and bool(flag) is True
    assert calls == [1] and "True" in repr(flag)


def _dist(site: Path, name: str, group: str, entry: str) -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")


def test_entry_points_are_read_once_and_again_for_a_name_not_found(tmp_path, monkeypatch):
    """A registry reads its group's entry points once for every name it finds there; a name it does not find
    makes it read them again, so a distribution installed since is found."""
    import occbench.entry_points as mod

    group = "occbench.test-startup"
    site = tmp_path / "site"
    (site / "plug_a.py").parent.mkdir(parents=True)
    (site / "plug_a.py").write_text("VALUE = 'a'\n")
    (site / "plug_b.py").write_text("VALUE = 'b'\n")
    _dist(site, "plug-a", group, "a = plug_a:VALUE")
    monkeypatch.syspath_prepend(str(site))
    reads = []
    orig = mod.entry_points
    monkeypatch.setattr(mod, "entry_points", lambda **k: reads.append(k) or orig(**k))
    reg = PluginRegistry(group, "plug-in")
    assert [reg.load("a") for _ in range(5)] == ["a"] * 5
    assert len(reads) == 1
    assert reg.source("a")["distribution"] == "plug-a" and reg.value("a") == "plug_a:VALUE" and len(reads) == 1
    _dist(site, "plug-b", group, "b = plug_b:VALUE")  # installed while the process runs
    importlib.invalidate_caches()  # as after any installation into a running process
    assert reg.load("b") == "b" and len(reads) == 2
    assert reg.load("a") == "a" and reg.load("b") == "b" and len(reads) == 2
    with pytest.raises(Exception, match="nope"):
        reg.load("nope")
    with pytest.raises(KeyError):
        reg.value("nope")


def test_poses_parsed_in_one_pass_equal_the_line_by_line_parse(tmp_path):
    """The one-pass parse of a number file gives the line-by-line parse's values and line numbers, bit for bit
    (the real poses of sequence 08 and a file of odd but valid tokens), and leaves every problem to it."""
    odd = tmp_path / "odd.txt"
    odd.write_text(
        "\n".join(
            [
                " ".join(["1", "-0", "+2.5", "1e-3", "1_000", "7", ".5", "5.", "-1E+2", "3", "4", "5"]),
                "",
                "\t".join(f"{x:.17g}" for x in np.random.default_rng(0).normal(size=12)),
                "   ",
                " ".join(["0.1"] * 12) + "   ",
            ]
        )
        + "\n"
    )
    for path in (SEQ08_POSES, odd):
        vals, lines = read_number_rows(path, "poses file", 12)
        ref_lines = read_text_lines(path, "poses file")
        ref = np.array([parse_numbers(path, i, line.split(), "12 floats per line", 12) for i, line in ref_lines])
        assert np.array_equal(vals, ref) and vals.dtype == np.float64
        assert lines.tolist() == [i for i, _ in ref_lines]
    bad = tmp_path / "bad.txt"
    for text, match in (
        ("1 " * 12 + "\n" + "1 " * 11 + "\n", "11 per line on line 2"),
        ("1 " * 12 + "\n" + "1 " * 11 + "x\n", r"'x' in column 12 is not a number"),
        ("1 " * 11 + "nan\n", "'nan' on line 1, column 12"),
        ("1 " * 11 + "1e999\n", "'1e999' on line 1, column 12"),
    ):
        bad.write_text(text)
        with pytest.raises(FormatError, match=match):
            read_number_rows(bad, "poses file", 12)


def test_number_files_are_parsed_once_per_content(tmp_path, monkeypatch):
    """A number file read again with the same bytes is not parsed again (each job of a run reads the poses) and
    gives equal, independent arrays; bytes changed behind an unchanged size and modification time are parsed
    again; a file that does not parse is refused every time, even where the same path parsed before."""
    import os

    from occbench.io import kitti

    parses = []
    parse = kitti._number_rows
    monkeypatch.setattr(kitti, "_number_rows", lambda *a: parses.append(a[0]) or parse(*a))
    monkeypatch.setattr(kitti, "_PARSED", {})
    path = tmp_path / "poses.txt"
    path.write_text("1 2 3\n4 5 6\n")
    st = os.stat(path)
    a, la = read_number_rows(path, "poses file", 3)
    a[0, 0] = -1  # the caller's copy
    b, lb = read_number_rows(path, "poses file", 3)
    assert len(parses) == 1 and b.tolist() == [[1, 2, 3], [4, 5, 6]] and lb.tolist() == la.tolist() == [1, 2]
    path.write_text("1 2 3\n4 5 7\n")  # same size; the modification time set back too
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    c, _ = read_number_rows(path, "poses file", 3)
    assert len(parses) == 2 and c.tolist() == [[1, 2, 3], [4, 5, 7]]
    assert read_number_rows(path, "poses file", 2 + 1)[0].tolist() == c.tolist() and len(parses) == 2
    path.write_text("1 2 3\n4 5 x\n")
    for _ in range(2):
        with pytest.raises(FormatError, match=r"'x' in column 3 is not a number"):
            read_number_rows(path, "poses file", 3)
    assert len(parses) == 4
    with pytest.raises(FormatError, match="2 floats per line"):  # the width is part of what was parsed
        path.write_text("1 2 3\n4 5 6\n")
        read_number_rows(path, "poses file", 3)
        read_number_rows(path, "poses file", 2)

"""The harness's frame shortcut gives ``inspect`` the same answers, only sooner."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import textwrap

from fwsurvey import frames


def _stack_during_import(tmp_path, monkeypatch) -> list:
    """Frames of a real import in progress: the module records its own stack when imported."""
    (tmp_path / "stackprobe_mod.py").write_text(textwrap.dedent("""
        import sys
        FRAMES = []
        f = sys._getframe()
        while f is not None:
            FRAMES.append(f)
            f = f.f_back
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("stackprobe_mod", None)
    module = importlib.import_module("stackprobe_mod")
    return module.FRAMES


def test_shortcut_answers_as_the_scan_does(tmp_path, monkeypatch):
    stack = _stack_during_import(tmp_path, monkeypatch)
    synthetic = [f for f in stack if f.f_code.co_filename.startswith("<")]
    real = [f for f in stack if not f.f_code.co_filename.startswith("<")]
    # An import runs through importlib's frozen frames: the case the shortcut exists for.
    assert synthetic and real
    original = inspect.getmodule
    expected = [(original(f, f.f_code.co_filename), original(f)) for f in stack]
    monkeypatch.setattr(frames, "_installed", False)
    try:
        assert frames.install() is True
        assert frames.install() is False  # once per process
        patched = inspect.getmodule
        assert patched is not original
        got = [(patched(f, f.f_code.co_filename), patched(f)) for f in stack]
        assert got == expected
        # Real files still resolve to their modules (this test module among them).
        assert any(module is sys.modules[__name__] for module, _ in got)
        # Objects with names take the original path: a function's module is found.
        assert patched(test_shortcut_answers_as_the_scan_does) is sys.modules[__name__]
        assert patched(inspect) is inspect
        # What Trax reads from inspect.stack(): file and line of the caller, unchanged.
        def where() -> tuple[str, int]:
            caller = inspect.getframeinfo(inspect.stack()[1][0])
            return caller.filename, caller.lineno
        assert where()[0] == __file__
    finally:
        inspect.getmodule = original


def test_shortcut_skips_the_module_scan_for_synthetic_frames():
    """Counted, not timed: the scan reads ``sys.modules``; the shortcut must not for ``<...>``."""
    code = textwrap.dedent("""
        import sys, inspect
        from fwsurvey import frames
        frames.install()
        frame = sys._getframe()
        code = compile("import sys; F = sys._getframe()", "<frozen fake>", "exec")
        ns = {}
        exec(code, ns)
        synthetic = ns["F"]

        class Counting(dict):
            reads = 0
            def copy(self):
                Counting.reads += 1
                return dict.copy(self)

        real_modules = sys.modules
        inspect.sys = type("S", (), {"modules": Counting(real_modules)})()
        inspect.getmodule(synthetic, "<frozen fake>")
        inspect.getmodule(synthetic)
        shortcut_reads = Counting.reads
        inspect.getmodule.__wrapped__(synthetic, "<frozen fake>")
        print(shortcut_reads, Counting.reads)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    shortcut_reads, total = map(int, done.stdout.split())
    assert shortcut_reads == 0
    assert total == 1  # the original scans sys.modules for the same frame

"""The report's "Ease of use", "Model architecture" and "Training & deployment" sections."""

from __future__ import annotations

from fwsurvey.config import load_config
from fwsurvey.pipeline import run_survey
from fwsurvey.reports.render import render_report
from fwsurvey.sources import Record
from fwsurvey.store import SourceOutcome, Store

NOW = "2026-11-27T12:00:00+00:00"


def summary(framework: str, category: str, symbols: int, documented: int, examples: int,
            note: str | None = None) -> Record:
    return Record("library_summary", {
        "fetched_at": NOW, "framework": framework, "category": category, "symbols": symbols,
        "classes": symbols, "functions": 0, "documented": documented, "with_example": examples,
        "package_version": "9.9", "spec_sha256": "x", "note": note})


def test_sections_show_pairs_and_surfaces_side_by_side(project, tmp_path):
    config = load_config(project())
    db = tmp_path / "s.db"
    run_survey(config, db, stages=["analyze"])
    store = Store(db)
    run_id = store.start_run("test", ["analyze"], {})
    records = [summary("pytorch", "layers", 133, 120, 80), summary("trax", "layers", 187, 150, 2),
               summary("pytorch", "models", 0, 0, 0, note="no zoo without torchvision"),
               summary("pytorch", "export", 2, 2, 1), summary("trax", "export", 1, 1, 0),
               Record("library_symbols", {
                   "fetched_at": NOW, "framework": "pytorch", "category": "export",
                   "symbol": "torch.onnx.export", "kind": "function", "defined_as": "x",
                   "has_docstring": True, "has_example": True, "doc_lines": 3})]
    store.write_source(run_id, SourceOutcome("analyze", "library_surface", "ok", NOW, NOW,
                                             items_ok=2), records)
    store.finish_run(run_id, "ok")
    text = render_report(store, config, tmp_path / "report").read_text()
    store.close()

    assert "#### Task `toy`" in text
    assert "| concepts | 5 | 7 | 0.71 |\n" in text  # raw values and ratio
    assert "| ceremony_calls | 6 | 3 | 2.00 |\n" in text
    assert "| lloc | " in text  # unweighted metrics are shown too
    assert 'No composite "ease of use" score is shown' in text and 'ratio: 1.15' not in text
    assert "Composite weights" not in text
    assert "(#appendix-ergonomics)" in text and "## Appendix: API ergonomics" in text
    # Per phase, PyTorch / Trax:
    assert "| model | 2 / 4 | 1 / 4 | 0 / 0 | 8 / 1 | 0 / 0 |\n" in text
    assert "| toy | JAX | ok | 3 |" in text  # JAX files are listed too
    assert "radon's Halstead counts operators and operands but no calls" in text
    assert "| Layers / modules | 133 (120 / 80) | 187 (150 / 2) |" in text
    assert "- Model zoo, PyTorch: no zoo without torchvision." in text
    assert "- PyTorch: `torch.onnx.export`" in text
    assert "| Export and deployment paths | 2 (2 / 1) | 1 (1 / 0) |" in text
    assert "API ergonomics: not measured yet" not in text

"""benchmarks/RESULTS.md is shared: bench_descriptors.py writes the file, and bench_accuracy.py,
bench_classify.py, bench_unsupervised.py, bench_scale.py, bench_orientation.py, bench_install.py, bench_user_training.py,
bench_properties.py, bench_properties_unseen.py and bench_openworld_seeds.py each own a section between HTML-comment markers that the others keep
(the PointNet runs of bench_accuracy.py and bench_classify.py write sections of their own, ``--section``)."""
from __future__ import annotations

from pathlib import Path

SECTIONS = ("accuracy", "classify", "unsupervised", "accuracy-pointnet", "classify-pointnet", "properties",
            "properties-krr", "scale", "fuzz", "orientation", "install",
            "accuracy-openworld", "classify-openworld", "user-training", "descriptors-avx2", "properties-unseen",
            "properties-unseen-before", "neighbour-ties", "openworld-seeds", "classify-diamond", "certificates-train", "classify-openworld-cpu",
            "classify-openworld-f32", "classify-openworld-quiet", "classify-openworld-kept", "neighbour-gather",
            "properties-formation-energy-100")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def section(text: str, name: str) -> str | None:
    """The marked section ``name`` of ``text`` (markers included), or None."""
    start, end = markers(name)
    if start in text and end in text:
        return text[text.index(start):text.index(end) + len(end)]
    return None


def replace_section(path, name: str, body: str) -> str:
    """Writes ``body`` as section ``name`` of the file (replacing it, or appended); returns the section."""
    path = Path(path)
    start, end = markers(name)
    block = f"{start}\n{body}\n{end}"
    old = path.read_text() if path.exists() else ""
    current = section(old, name)
    new = old.replace(current, block) if current else old.rstrip() + "\n\n" + block + "\n"
    path.write_text(new)
    return block

"""The README's main job: ovito-mlclass demo on the bundled snapshot, headless render included."""
import numpy as np
from PIL import Image

from ovito_mlclass import BACKEND
from ovito_mlclass.cli import main


def test_the_compiled_kernel_is_what_the_suite_tests():
    assert BACKEND == "c++"


def test_demo_prints_a_table_and_renders_the_qbar6_colours(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "Steinhardt descriptors of 16128 atoms" in printed and "qbar6 range" in printed
    rgb = np.asarray(Image.open(tmp_path / "demo_qbar6.png").convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # Viridis runs from dark purple (68, 1, 84) for the liquid to yellow (253, 231, 37) for the
    # crystal (matplotlib's table); both must cover a visible part of the image.
    purple = (b > g + 30) & (r > g + 20)
    yellow_green = (g > b + 80) & (r > b + 20)
    assert purple.mean() > 0.05, purple.mean()
    assert yellow_green.mean() > 0.05, yellow_green.mean()

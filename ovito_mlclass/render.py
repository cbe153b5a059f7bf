"""Pictures of a pipeline: headless rendering to a PNG (OVITO's renderers; no display needed) with
a legend of the structure types and their counts."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from ovito.vis import ViewportOverlayInterface
from traits.api import Float, Str

VULKAN_HINT = ("OVITO's OpenGL renderer needs a Vulkan driver; on Debian/Ubuntu install one with "
               "`apt-get install -y libvulkan1 mesa-vulkan-drivers` (software rendering, no GPU needed).")


class StructureLegendOverlay(ViewportOverlayInterface):
    """A viewport layer listing the types of a typed particle property (``Structure Type`` by
    default) with their colours, counts and shares, one line per type present in the frame."""

    property = Str("Structure Type", label="Typed property", desc="the typed particle property whose types are listed")
    font_size = Float(0.035, label="Text size (fraction of the image height)", desc="the height of a line of text")

    def render(self, canvas: ViewportOverlayInterface.Canvas, *, data, **kwargs):
        if data is None or data.particles is None or self.property not in data.particles:
            return
        lines = legend_lines(data.particles[self.property])
        y = 0.97
        for name, color, count, share in lines:
            canvas.draw_text("■", (0.02, y), font_size=self.font_size * 1.2, anchor="north west", color=color,
                             outline_width=1.0, outline_color=(0.3, 0.3, 0.3))
            canvas.draw_text(f"{name}  {count:,}  ({share:.1%})", (0.055, y), font_size=self.font_size,
                             anchor="north west", color=(0.1, 0.1, 0.1), outline_width=2.0)
            y -= 1.35 * self.font_size


def legend_lines(prop) -> list[tuple]:
    """(name, colour, count, share) of every type of a typed property that some particle has."""
    values = np.asarray(prop)
    counts = np.bincount(values, minlength=max((t.id for t in prop.types), default=0) + 1)
    total = max(len(values), 1)
    return [(t.name, tuple(t.color), int(counts[t.id]), counts[t.id] / total)
            for t in prop.types if t.id < len(counts) and counts[t.id] > 0]


def render_png(pipeline, filename, size=(1000, 750), overlays=None, direction=(2, 1.2, -1.0)):
    """Renders ``pipeline`` in a perspective view to ``filename``, with a legend of the structure
    types and their counts (``overlays``: other viewport layers instead). Uses OVITO's OpenGL
    renderer, or its CPU ray tracer (Tachyon) with a warning if no Vulkan driver is installed."""
    from ovito.vis import OpenGLRenderer, PythonViewportOverlay, TachyonRenderer, Viewport

    filename = Path(filename)
    filename.parent.mkdir(parents=True, exist_ok=True)
    overlays = [PythonViewportOverlay(delegate=StructureLegendOverlay())] if overlays is None else overlays
    pipeline.add_to_scene()
    try:
        viewport = Viewport(type=Viewport.Type.Perspective, camera_dir=direction)
        for overlay in overlays:
            viewport.overlays.append(overlay)
        viewport.zoom_all(size)
        try:
            viewport.render_image(size=size, filename=str(filename), background=(1, 1, 1),
                                  renderer=OpenGLRenderer())
        except Exception as error:  # no Vulkan loader or driver on this machine
            warnings.warn(f"OpenGL rendering failed ({error}); using the slower Tachyon renderer. {VULKAN_HINT}",
                          RuntimeWarning, stacklevel=2)
            viewport.render_image(size=size, filename=str(filename), background=(1, 1, 1),
                                  renderer=TachyonRenderer(ambient_occlusion=False))
    finally:
        pipeline.remove_from_scene()
    return filename

"""Headless rendering of a pipeline to a PNG (OVITO's renderers; no display needed)."""
from __future__ import annotations

import warnings
from pathlib import Path

VULKAN_HINT = ("OVITO's OpenGL renderer needs a Vulkan driver; on Debian/Ubuntu install one with "
               "`apt-get install -y libvulkan1 mesa-vulkan-drivers` (software rendering, no GPU needed).")


def render_png(pipeline, filename, size=(1000, 750), overlays=(), direction=(2, 1.2, -1.0)):
    """Renders ``pipeline`` in a perspective view to ``filename``. Uses OVITO's OpenGL renderer,
    or its CPU ray tracer (Tachyon) with a warning if no Vulkan driver is installed."""
    from ovito.vis import OpenGLRenderer, TachyonRenderer, Viewport

    filename = Path(filename)
    filename.parent.mkdir(parents=True, exist_ok=True)
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

"""Sphinx directives that build reference material from the code itself, so it cannot drift:

- ``ovito-parameters``: a modifier's (or viewport layer's) parameter table, grouped as in OVITO's
  panel, and a picture of the panel, from the class's traits (label, group, default, range, ``desc``);
- ``model-card``: a built-in model's classes (OVITO type ids and colours), features, thresholds,
  validation scores and provenance, from the metadata inside the model file;
- ``cli-help``: a command's ``--help``, from the argument parser;
- ``ovito-render``: runs the Python code it holds (which builds an OVITO ``pipeline``), shows the
  code, and renders the pipeline to a picture with the structure legend.
"""
from __future__ import annotations

import importlib
import io
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

GENERATED = Path(__file__).resolve().parent.parent / "_generated"


def _parse(directive, markdown_or_rst: str, rst: bool = True):
    node = nodes.section()
    node.document = directive.state.document
    directive.state.nested_parse(StringList(markdown_or_rst.splitlines()), 0, node)
    return node.children


def _import(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def parameters(cls) -> list[dict]:
    """The user-facing traits of an OVITO extension class, in definition order."""
    rows = []
    for name, trait in cls.class_traits().items():
        if name.startswith("_") or name in ("trait_added", "trait_modified") or trait.visible is False:
            continue
        kind = type(trait.trait_type).__name__
        if kind in ("Event", "Button"):
            continue
        allowed = ""
        if getattr(trait.trait_type, "values", None):
            allowed = ", ".join(f"``{v}``" for v in trait.trait_type.values)
        elif getattr(trait.trait_type, "_low", None) is not None:
            allowed = f"{trait.trait_type._low:g} – {trait.trait_type._high:g}"
        default = trait.default
        rows.append({"name": name, "kind": kind, "label": trait.label or name, "group": trait.ovito_group or "",
                     "default": "" if default in (None, "") else repr(default) if not isinstance(default, list) else
                     "the model's", "allowed": allowed, "desc": trait.desc or ""})
    return rows


def panel_png(cls, rows, filename: Path) -> Path:
    """A sketch of the panel OVITO builds from the traits: groups as framed boxes, one line per
    parameter with its label and a widget showing the default."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    groups = {}
    for row in rows:
        if row["kind"] in ("List",):
            continue
        groups.setdefault(row["group"] or "Parameters", []).append(row)
    lines = sum(len(g) + 1.6 for g in groups.values())
    fig = plt.figure(figsize=(4.6, 0.3 * lines + 0.6), dpi=110)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, lines + 1)
    ax.axis("off")
    y = lines + 0.6
    ax.text(0.03, y, cls.__name__, fontsize=9, weight="bold", va="center")
    y -= 1.0
    for group, members in groups.items():
        top = y + 0.2
        ax.text(0.06, y, group, fontsize=8, color="0.3", va="center", weight="bold")
        y -= 0.9
        for row in members:
            ax.text(0.08, y, row["label"], fontsize=7.5, va="center")
            widget = {"Bool": "☑" if row["default"] == "True" else "☐", "Enum": f"{row['default'].strip(chr(39))} ▾",
                      "FilePath": "…  [Choose]"}.get(row["kind"], row["default"].strip("'") or "")
            ax.add_patch(FancyBboxPatch((0.66, y - 0.32), 0.3, 0.64, boxstyle="round,pad=0.01", fc="white",
                                        ec="0.6", lw=0.6))
            ax.text(0.675, y, widget, fontsize=7, va="center", family="DejaVu Sans")
            y -= 1.0
        ax.add_patch(FancyBboxPatch((0.03, y + 0.45), 0.95, top - y - 0.25, boxstyle="round,pad=0.01", fc="none",
                                    ec="0.75", lw=0.8))
        y -= 0.6
    filename.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(filename, facecolor=(0.96, 0.96, 0.97))
    plt.close(fig)
    return filename


class OvitoParameters(Directive):
    required_arguments = 1

    def run(self):
        cls = _import(self.arguments[0])
        rows = parameters(cls)
        png = panel_png(cls, rows, GENERATED / "panels" / f"{cls.__name__}.png")
        env = self.state.document.settings.env
        src_dir = Path(env.srcdir)
        rel = "/" + str(png.relative_to(src_dir))
        table = [".. list-table::", "   :header-rows: 1", "   :widths: 18 22 14 14 32", "",
                 "   * - parameter", "     - label (group)", "     - default", "     - allowed", "     - meaning"]
        for row in rows:
            group = f" ({row['group']})" if row["group"] else ""
            table += [f"   * - ``{row['name']}``", f"     - {row['label']}{group}",
                      f"     - ``{row['default']}``" if row["default"] else "     - ",
                      f"     - {row['allowed']}", f"     - {row['desc']}"]
        text = [f".. figure:: {rel}", "   :align: right", "   :width: 45%", "",
                f"   The panel OVITO builds for ``{cls.__name__}`` (a sketch drawn from its parameters).", ""] + table
        return _parse(self, "\n".join(text))


class ModelCard(Directive):
    required_arguments = 1

    def run(self):
        from ovito_mlclass.model import StructureModel

        model = StructureModel.load(self.arguments[0], device="cpu")
        meta, kinds = model.metadata, model.structure_types
        v, t = meta.get("validation", {}), meta.get("training", {})
        chosen_on = "calibration snapshots set aside from training" if t.get("calibration_files") else "validation data"
        out = [f"**{model.name}** — {meta.get('description', '')}", ""]
        out += [".. list-table:: Classes", "   :header-rows: 1", "", "   * - class", "     - structure type id",
                "     - colour (RGB)", "     - validation recall"]
        recall = v.get("recall", {})
        for cls, type_id, name, color in zip(model.classes, kinds.ids, kinds.names, kinds.colors):
            shown = name if name == cls else f"{cls} (OVITO's {name})"
            r = recall.get(cls)
            out += [f"   * - {shown}", f"     - {type_id}", f"     - {', '.join(f'{c:.2f}' for c in color)}",
                    f"     - {r:.4f}" if isinstance(r, float) else "     - "]
        out += ["", f"- Features: {len(model.features.names)} numbers per atom from "
                f"{', '.join(_block(b) for b in model.features.blocks)}"
                + (f", each also averaged over the atom and its {model.features.neighbor_mean} nearest neighbours"
                   if model.features.neighbor_mean else "") + ".",
                f"- Reject threshold θ = {model.reject_threshold:.2f} (chosen on {chosen_on})."]
        if model.has_novelty:
            nov = meta["novelty"]
            out.append(f"- Novelty: class-conditional Gaussians of the {nov['space']}; threshold at the "
                       f"{nov['quantile']} quantile of each class's atoms in the {chosen_on}.")
        if model.site_classes:
            out.append(f"- Site output ``{meta.get('site_property')}``: {', '.join(model.site_classes)} "
                       f"(for atoms of {', '.join(model.classes_with_sites)}).")
        if v:
            out.append(f"- Validation on held-out MD ({v.get('atoms', 0):,} atoms): balanced accuracy "
                       f"{v.get('balanced_accuracy', 0):.4f}"
                       + (" (the network with its thresholds, before the topology tests that certify its answers in "
                          "use)" if model.has_novelty else "") + ".")
        if t:
            out.append(f"- Made by ``{t.get('command')}`` (seed {t.get('seed')}; training data sha256 "
                       f"``{str(t.get('data_hash', ''))[:16]}``; {t.get('seconds')} s on {t.get('threads')} threads).")
        by_group = v.get("by_group", {})
        if by_group:
            out += ["", ".. list-table:: Validation by kind of snapshot", "   :header-rows: 1", "",
                    "   * - snapshots", "     - atoms", "     - accuracy"]
            for group, score in sorted(by_group.items()):
                out += [f"   * - {group}", f"     - {score['atoms']:,}", f"     - {score['accuracy']:.4f}"]
        return _parse(self, "\n".join(out))


def _block(block: dict) -> str:
    kind = block["kind"]
    if kind == "steinhardt":
        return (f"Steinhardt invariants l = {', '.join(map(str, block['degrees']))} over "
                f"{block['neighbors'] if block['neighbors'] != 'voronoi' else 'Voronoi'} neighbours"
                f"{' (and averaged)' if block['averaged'] else ''}")
    if kind in ("distances", "point_cloud"):
        return f"{kind.replace('_', ' ')} of the {block['neighbors']} nearest neighbours"
    return "Behler–Parrinello symmetry functions"


class CliHelp(Directive):
    required_arguments = 0
    optional_arguments = 1

    def run(self):
        from contextlib import redirect_stdout

        from ovito_mlclass.cli import main

        argv = ([self.arguments[0]] if self.arguments else []) + ["--help"]
        text = io.StringIO()
        with redirect_stdout(text):
            try:
                main(argv)
            except SystemExit:
                pass
        block = nodes.literal_block(text.getvalue(), text.getvalue())
        block["language"] = "text"
        return [block]


class OvitoRender(Directive):
    required_arguments = 1          # the picture's name
    has_content = True
    option_spec = {"hide-code": lambda value: True, "caption": str}

    def run(self):
        from ovito_mlclass.render import render_png

        code = "\n".join(self.content)
        namespace = {}
        exec(compile(code, f"<{self.arguments[0]}>", "exec"), namespace)
        png = render_png(namespace["pipeline"], GENERATED / "renders" / f"{self.arguments[0]}.png", size=(800, 560))
        src_dir = Path(self.state.document.settings.env.srcdir)
        block = nodes.literal_block(code, code)
        block["language"] = "python"
        figure = f".. figure:: /{png.relative_to(src_dir)}\n   :width: 80%\n\n   {self.options.get('caption', '')}"
        return ([] if "hide-code" in self.options else [block]) + _parse(self, figure)


def setup(app):
    app.add_directive("ovito-render", OvitoRender)
    app.add_directive("ovito-parameters", OvitoParameters)
    app.add_directive("model-card", ModelCard)
    app.add_directive("cli-help", CliHelp)
    return {"parallel_read_safe": True}

"""Stage 4 of the data flow: feature vectors -> class posteriors.

A trained classifier is one file: a TorchScript module (which libtorch and LAMMPS-style C++
consumers load too) carrying a JSON metadata record (:data:`METADATA_FILE`): class names and
colours, the exact feature specification, the reject threshold, how the model was trained and how
it scored on validation data.

Model files are untrusted input: a file is checked to be a TorchScript archive before torch reads
it (TorchScript's own reader restores tensors and TorchScript code, never arbitrary Python
objects), and the network is first run on the user's data, not at load. ``torch.export``
archives (``.pt2``) are refused: their reader unpickles parts of the file with Python's pickle,
which can run code. The module maps raw features (float32, ``(n, n_features)``) to class logits and, for models
with a second output (Frank–Kasper sites), site logits; the feature normalisation is inside the
module, so a C++ consumer needs nothing else.

A model with ``neighbor_average = k`` in its metadata (format 3; PointNets) is applied in two
steps: the module's ``embed`` maps every atom's features to a learnt vector, which is averaged over
the atom and its k nearest neighbours (:func:`neighbor_mean`) before the module's ``classify``.
On the CPU, a PointNet's ``embed`` runs in the compiled kernel (:func:`compiled_embedding`), which
computes the same function faster than the TorchScript module (benchmarks/RESULTS.md).
"""
from __future__ import annotations

import functools
import json
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .features import FeatureSpec

METADATA_FILE = "ovito_mlclass.json"
# 2: may hold 'point_cloud' feature blocks (PointNet models), which version-1 readers cannot build;
# 3: may average over neighbours ('neighbor_average'), which version-2 readers would silently skip;
# 4: the network may return a novelty score, which version-3 readers would silently ignore;
# 5: may name a bulk phase ('bulk_phase', classify.bulk_phase_region), which version-4 readers would ignore
FORMAT_VERSION = 5
BUILTIN_DIR = Path(__file__).parent / "models"



class Prediction(NamedTuple):
    """What a model says about each atom: class posteriors ``(n, C)``, site posteriors ``(n, S)``
    or None, its novelty ``(n,)`` (above 1: unlike every training class) or None for models
    without one; from the compiled network also the most probable class ``(n,)`` (the first of
    equal maxima, as ``probabilities.argmax(axis=1)``) and its posterior ``(n,)``, else None."""

    probabilities: np.ndarray
    sites: np.ndarray | None = None
    novelty: np.ndarray | None = None
    most_probable: np.ndarray | None = None
    confidence: np.ndarray | None = None


class ModelError(ValueError):
    """A model file that cannot be used: unreadable, without metadata, or inconsistent."""


class DeviceError(ValueError):
    """A device that cannot run the network: unknown, or CUDA asked for where there is none."""


def resolve_device(device: str | None = "auto") -> str:
    """The torch device a network runs on: ``"auto"`` (or None) picks CUDA when torch sees a GPU,
    else the CPU; ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` are checked, so that asking for a GPU on a
    machine without one is a clear error rather than a crash in the middle of a pipeline."""
    import torch

    if device is None or str(device).strip().lower() in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        chosen = torch.device(str(device).strip().lower())
    except RuntimeError:
        raise DeviceError(f"Unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from None
    if chosen.type == "cpu":
        return "cpu"
    if chosen.type != "cuda":
        raise DeviceError(f"Device {device!r} is not supported: use 'auto', 'cpu', 'cuda' or 'cuda:N'.")
    if not torch.cuda.is_available():
        why = ("this torch build has no CUDA support" if torch.version.cuda is None
               else "torch finds no usable GPU")
        raise DeviceError(f"Device {device!r} was asked for, but CUDA is not available ({why}; torch "
                          f"{torch.__version__}). Use device='cpu' or 'auto'.")
    if chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise DeviceError(f"Device {device!r} was asked for, but there are only {torch.cuda.device_count()} GPU(s).")
    return str(chosen)


@contextmanager
def quiet_torchscript():
    """A context in which torch's TorchScript deprecation warnings are silenced. torch 2.13 marks
    TorchScript deprecated and warns on every jit call (loading, saving, scripting a model); that
    is our concern, not the user's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch(\.|$)")
        warnings.filterwarnings("ignore", message=r".*TorchScript.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*", category=DeprecationWarning)
        yield


def _reason(exc: Exception) -> str:
    """One line saying why a network call failed. A TorchScript error starts with a traceback of
    the scripted code and names the exception raised inside it on its last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith("The following operation failed in the TorchScript interpreter"):
        return lines[-1].removeprefix("builtins.")
    return f"{type(exc).__name__}: {lines[0]}"


def load_model(name_or_path, device: str | None = "auto") -> "StructureModel":
    """:meth:`StructureModel.load`, remembered per file (and its modification time) and device: a
    pipeline evaluates the modifier on every frame, and a model is only ever read at inference."""
    device = resolve_device(device)
    path = resolve_model_path(name_or_path, builtin_models())
    return _load_cached(str(path), path.stat().st_mtime_ns, device)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime: int, device: str) -> "StructureModel":
    return StructureModel.load(Path(path), device)


# the model used when none is named: every structure OVITO's PTM knows, plus liquids
DEFAULT_MODEL = "openworld"


def builtin_models() -> dict[str, Path]:
    """Names and files of the models shipped inside the package."""
    return {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.pt"))}


@dataclass
class StructureModel:
    """A loaded classifier: ``module`` (a TorchScript module) plus its metadata.
    ``device``: where the network runs (see :func:`resolve_device`; features and posteriors stay
    NumPy arrays on the CPU either way)."""

    module: object
    metadata: dict
    path: Path | None = None
    device: str = "cpu"
    _embed = False  # the compiled PointNet.embed where it applies (compiled_embedding), None where not; False: not yet asked
    _network = False  # the compiled StructureNet where it applies and agrees with the module (compiled_network), else None

    def __post_init__(self):
        import torch

        self.device = resolve_device(self.device)
        self._callable = self.module if self.device == "cpu" else self.module.to(self.device)
        self._checked = False  # output shapes, checked on the first batch the network sees
        check_metadata(self.metadata, self._where())
        try:
            self.features = FeatureSpec.from_dict(self.metadata["features"])
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelError(f"{self._where()}: invalid feature specification in the metadata: {exc}") from exc
        if self.neighbor_average:
            if int(self.metadata["format_version"]) < 3:
                raise ModelError(f"{self._where()}: 'neighbor_average' needs metadata format 3 (older readers would "
                                 f"ignore it), but the file says {self.metadata['format_version']}.")
            if not (hasattr(self._callable, "embed") and hasattr(self._callable, "classify")):
                raise ModelError(f"{self._where()}: the metadata ask for averaging over neighbours, but the network "
                                 f"has no 'embed' and 'classify' methods.")
            if self.device == "cpu":
                # frozen weights let oneDNN fuse the per-point layers (same output, less embedding time);
                # the file keeps the unfrozen module (self.module)
                with quiet_torchscript():
                    self._callable = torch.jit.optimize_for_inference(
                        torch.jit.freeze(self._callable.eval(), preserved_attrs=["embed", "classify"]))

    # ---- metadata views ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.metadata.get("name") or (self.path.stem if self.path else "model")

    @property
    def classes(self) -> list[str]:
        return list(self.metadata["classes"])

    @property
    def colors(self) -> list[tuple[float, float, float]]:
        return [tuple(float(c) for c in rgb) for rgb in self.metadata["colors"]]

    @property
    def structure_types(self):
        """OVITO's structure type id, name and colour of every class (:mod:`.structure_types`)."""
        from .structure_types import structure_types

        return structure_types(self.classes, self.colors)

    @property
    def site_classes(self) -> list[str]:
        return list(self.metadata.get("site_classes", []))

    @property
    def classes_with_sites(self) -> list[str]:
        """The classes whose atoms have a site (the Frank-Kasper phases of ``tcp``); an atom of
        another class has none, whatever the site output says."""
        return list(self.metadata.get("site_classes_of", self.classes))

    @property
    def reject_threshold(self) -> float:
        return float(self.metadata["reject_threshold"])

    @property
    def has_novelty(self) -> bool:
        """Does the network score how unlike every training class an atom is (metadata 'novelty')?"""
        return "novelty" in self.metadata

    @property
    def bulk_phase(self) -> dict | None:
        """The class that exists only as a bulk (3-D) phase, and its rule (metadata 'bulk_phase':
        ``class``, ``neighbors``, ``min_neighbors``, ``counting``; :func:`~ovito_mlclass.classify.bulk_phase_region`),
        or None."""
        return self.metadata.get("bulk_phase")

    @property
    def neighbor_average(self) -> int:
        """k > 0: the network's learnt features are averaged over each atom and its k nearest
        neighbours (predict needs their indices); 0: every atom on its own."""
        return int(self.metadata.get("neighbor_average", 0))

    def _where(self) -> str:
        return str(self.path) if self.path else "model"

    # ---- inference ---------------------------------------------------------------------------
    def _forward(self, x):
        """(class logits, site logits or None, novelty or None) of one batch; the first batch also
        checks that the network's outputs match the metadata (a file is never run at load: see the
        module docstring)."""
        try:
            out = self._callable(x)
        except Exception as exc:  # e.g. the network rejects the input width
            raise ModelError(f"{self._where()}: the network does not accept the {x.shape[1]} features its metadata "
                             f"specify ({_reason(exc)}).") from exc
        out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        logits, sites = out[0], (out[1] if len(out) > 1 else None)
        novelty = out[2] if len(out) > 2 and self.has_novelty else None
        if not self._checked:
            self._check_outputs(logits, sites, len(x))
            if self.has_novelty and (novelty is None or tuple(novelty.shape) != (len(x),)):
                raise ModelError(f"{self._where()}: the metadata describe a novelty score, but the network gives "
                                 f"none per atom.")
        return logits, sites, novelty

    def _check_outputs(self, logits, sites, n: int) -> None:
        if tuple(logits.shape) != (n, len(self.classes)):
            raise ModelError(f"{self._where()}: the network has {tuple(logits.shape)[1:]} outputs per atom, but the "
                             f"metadata name {len(self.classes)} classes {self.classes}.")
        n_sites = 0 if sites is None or sites.numel() == 0 else sites.shape[-1]
        if n_sites != len(self.site_classes):
            raise ModelError(f"{self._where()}: the network has {n_sites} site outputs, but the metadata name "
                             f"{len(self.site_classes)} site classes.")
        self._checked = True

    @property
    def batch_size(self) -> int:
        """Atoms per network call, so that a call's activations stay in the CPU cache. A point-cloud
        network holds (atoms x points x width) activations: 256 x 40 x 64 floats; a descriptor
        network about 100 floats per atom: 8192 atoms (calls of 65536 leave the cache and are slower)."""
        clouds = any(b["kind"] == "point_cloud" for b in self.features.blocks)
        return 256 if clouds else 8192

    def predict(self, features: np.ndarray, neighbors: np.ndarray | None = None, batch: int | None = None
                ) -> Prediction:
        """Class posteriors ``(n, n_classes)``, for models with a site output site posteriors, for
        models with a novelty score the novelty (:class:`Prediction`).
        The network sees ``batch`` atoms at a time (default :attr:`batch_size`), converted to float32
        one batch at a time, so memory stays bounded on any frame size; on the CPU the batches are
        shared among torch's threads (``torch.get_num_threads()``), each running whole batches. A model with
        :attr:`neighbor_average` k needs ``neighbors``: ``(n, k)`` row indices of every atom's k
        nearest neighbours, -1 where an atom has fewer (``FeatureSpec.compute(data, neighbors=k)``)."""
        import torch

        features = np.asarray(features)
        batch = batch or self.batch_size
        if features.ndim != 2 or features.shape[1] != len(self.features.names):
            raise ModelError(f"Expected features of shape (n, {len(self.features.names)}), got {features.shape}.")
        if self.neighbor_average:
            return Prediction(self._predict_averaged(features, neighbors, batch))
        if self._network is False and len(features):  # decided on the first frame: the compiled network where it applies
            self._network = self._checked_compiled_network(features[:batch])
        if self._network:
            return Prediction(*self._network(features))
        probs = np.empty((len(features), len(self.classes)), dtype=np.float32)
        sites = np.empty((len(features), len(self.site_classes)), dtype=np.float32) if self.site_classes else None
        novelty = np.empty(len(features), dtype=np.float32) if self.has_novelty else None

        def run(start):
            with torch.no_grad():  # torch's grad mode is per thread
                logits, site_logits, novel = self._forward(self._batch(features, start, batch).to(self.device))
                probs[start:start + batch] = torch.softmax(logits, dim=1).cpu().numpy()
                if sites is not None:
                    sites[start:start + batch] = torch.softmax(site_logits, dim=1).cpu().numpy()
                if novelty is not None:
                    novelty[start:start + batch] = novel.cpu().numpy()

        starts = range(0, len(features), batch)
        if len(starts):
            run(starts[0])  # alone: the first batch checks the network's outputs
        threads = torch.get_num_threads() if self.device == "cpu" else 1
        if threads > 1 and len(starts) > 2:
            # Each thread runs whole batches on one core: the threads meet once per frame instead
            # of once per operation of every batch (many times slower where cores are shared).
            torch.set_num_threads(1)
            try:
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(run, starts[1:]))
            finally:
                torch.set_num_threads(threads)
        else:
            for start in starts[1:]:
                run(start)
        return Prediction(probs, sites, novelty)

    def _checked_compiled_network(self, sample):
        """:func:`compiled_network` for this model where it applies and gives the TorchScript module's
        outputs on ``sample`` (the first atoms of the first frame), else None."""
        import torch

        network = compiled_network(self.module, self.has_novelty) if self.device == "cpu" else None
        if network is None:
            return None
        with torch.no_grad():  # also checks the module's outputs against the metadata (_forward)
            logits, site_logits, novelty = self._forward(self._batch(sample, 0, len(sample)))
        probs, sites, my_novelty = network(sample)[:3]
        same = np.allclose(probs, torch.softmax(logits, 1).numpy(), rtol=1e-4, atol=1e-5)
        if sites is not None:
            same &= np.allclose(sites, torch.softmax(site_logits, 1).numpy(), rtol=1e-4, atol=1e-5)
        if novelty is not None:  # the novelty of the predicted class: compared where both predict the same one
            agree = probs.argmax(axis=1) == logits.argmax(dim=1).numpy()
            same &= np.allclose(my_novelty[agree], novelty.numpy()[agree], rtol=1e-3, atol=1e-5)
        if not same:
            warnings.warn(f"{self._where()}: the compiled network does not reproduce this network's outputs; running it "
                          f"in TorchScript instead (slower).", RuntimeWarning, stacklevel=3)
            return None
        return network

    @staticmethod
    def _batch(features, start, batch):
        import torch

        return torch.from_numpy(np.ascontiguousarray(features[start:start + batch], dtype=np.float32))

    def _predict_averaged(self, features, neighbors, batch):
        import torch

        k, n = self.neighbor_average, len(features)
        if neighbors is None:
            raise ModelError(f"Model {self.name!r} averages over each atom's {k} nearest neighbours: pass their "
                             f"indices (FeatureSpec.compute(data, neighbors={k}) returns them).")
        neighbors = np.asarray(neighbors)
        if neighbors.shape != (n, k) or not np.issubdtype(neighbors.dtype, np.integer):
            raise ModelError(f"Expected neighbour indices of shape ({n}, {k}) (integers), got {neighbors.shape} "
                             f"({neighbors.dtype}).")
        if n and (neighbors.min() < -1 or neighbors.max() >= n):
            raise ModelError(f"Neighbour indices must lie in [-1, {n - 1}] (-1: missing).")
        if self._embed is False:  # the compiled kernel is checked against this network on first use
            self._embed = compiled_embedding(self.module, self._where()) if self.device == "cpu" else None
        with torch.no_grad():
            h = self._embed(features) if self._embed else embed_all(self._callable, features, batch, self.device)
            h = neighbor_mean(h, torch.from_numpy(neighbors.astype(np.int64, copy=False)))
            probs = np.empty((n, len(self.classes)), dtype=np.float32)
            head_batch = 65536  # the head sees one vector per atom: small, unlike the clouds
            for start in range(0, n, head_batch):
                logits = self._callable.classify(h[start:start + head_batch].to(self.device))
                if not self._checked:
                    self._check_outputs(logits, None, len(logits))
                probs[start:start + head_batch] = torch.softmax(logits, 1).cpu().numpy()
        return probs

    # ---- files -------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the model as a TorchScript file (``.pt``)."""
        return save_model_file(self.module, self.metadata, path)

    @classmethod
    def load(cls, name_or_path, device: str | None = "auto") -> "StructureModel":
        """A built-in model by name (see :func:`builtin_models`) or a TorchScript model file, its
        network on ``device`` (see :func:`resolve_device`)."""
        device = resolve_device(device)
        module, metadata, path = load_model_file(resolve_model_path(name_or_path, builtin_models()))
        return cls(module=module, metadata=metadata, path=path, device=device)


def resolve_model_path(name_or_path, builtins: dict[str, Path]) -> Path:
    """The file of a built-in model name or a model path; :class:`ModelError` / FileNotFoundError
    naming the built-in models otherwise."""
    if isinstance(name_or_path, str) and name_or_path in builtins:
        return builtins[name_or_path]
    known = ", ".join(builtins) or "none installed"
    if not str(name_or_path).strip():
        raise ModelError(f"No model given: name a built-in model ({known}) or a model file.")
    path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(f"No model named or at {str(name_or_path)!r}. Built-in models: {known}.")
    if not path.is_file():
        raise ModelError(f"{path} is a folder, not a model file. Built-in models: {known}.")
    return path


def check_metadata(meta, where: str) -> None:
    """:class:`ModelError` unless the metadata record has the keys and value types a classifier needs."""
    def fail(text):
        raise ModelError(f"{where}: {text}")

    if not isinstance(meta, dict):
        fail("the ovito-mlclass metadata are not a JSON object.")
    for key in ("format_version", "classes", "colors", "features", "reject_threshold"):
        if key not in meta:
            fail(f"the model metadata lack '{key}'.")
    version = meta["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        fail(f"'format_version' must be a positive integer, got {version!r}.")
    if version > FORMAT_VERSION:
        fail(f"metadata format {version} is newer than this ovito-mlclass understands ({FORMAT_VERSION}); "
             f"upgrade ovito-mlclass.")
    for key in ("classes", "site_classes", "site_classes_of"):
        names = meta.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
            fail(f"'{key}' must be a list of non-empty names, got {names!r}.")
        if len(set(names)) != len(names):
            fail(f"'{key}' names a class twice: {names}.")
    if not meta["classes"]:
        fail("the metadata name no classes.")
    if not set(meta.get("site_classes_of", [])) <= set(meta["classes"]):
        fail(f"'site_classes_of' names classes the model does not have: {meta['site_classes_of']}.")
    if "Other" in meta["classes"]:
        fail("'Other' is reserved for rejected atoms and cannot be a class.")
    colors = meta["colors"]
    if not isinstance(colors, list) or len(colors) != len(meta["classes"]):
        fail(f"{len(meta['classes'])} classes but {len(colors) if isinstance(colors, list) else colors!r} colours.")
    for rgb in colors:
        if not (isinstance(rgb, list) and len(rgb) == 3 and all(_is_number(c) and 0 <= c <= 1 for c in rgb)):
            fail(f"every colour must be three numbers in [0, 1], got {rgb!r}.")
    from .structure_types import structure_types

    try:
        structure_types(meta["classes"], colors)
    except ValueError as exc:
        fail(str(exc))
    theta = meta["reject_threshold"]
    if not (_is_number(theta) and 0 <= theta <= 1):
        fail(f"'reject_threshold' must be a number in [0, 1], got {theta!r}.")
    k = meta.get("neighbor_average", 0)
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        fail(f"'neighbor_average' must be a non-negative integer, got {k!r}.")
    if "novelty" in meta and (version < 4 or not isinstance(meta["novelty"], dict)):
        fail("'novelty' needs metadata format 4 (older readers would ignore it) and a record of how it was made.")
    if "bulk_phase" in meta:
        check_bulk_phase(meta["bulk_phase"], meta["classes"], fail)
        if version < 5:
            fail("'bulk_phase' needs metadata format 5 (older readers would ignore it).")


def check_bulk_phase(rule, classes, fail) -> None:
    """``fail(text)`` unless ``rule`` is a bulk-phase record (``class``, ``neighbors``,
    ``min_neighbors``, ``counting``) over ``classes``."""
    if not isinstance(rule, dict) or set(rule) != {"class", "neighbors", "min_neighbors", "counting"}:
        fail(f"'bulk_phase' must have exactly the keys class, neighbors, min_neighbors, counting; got {rule!r}.")
    if rule["class"] not in classes:
        fail(f"'bulk_phase' names the class {rule['class']!r}, which the model does not have ({classes}).")
    k, m = rule["neighbors"], rule["min_neighbors"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (k, m)) or not 1 <= m <= k <= 64:
        fail(f"'bulk_phase' needs integers 1 <= min_neighbors <= neighbors <= 64, got {m!r} and {k!r}.")
    counting = rule["counting"]
    if not isinstance(counting, list) or not set(counting) <= set(classes):
        fail(f"'bulk_phase' counting must list classes of the model, got {counting!r}.")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def save_model_file(module, metadata: dict, path) -> Path:
    """Writes a TorchScript network and its metadata record (JSON, as :data:`METADATA_FILE` inside
    the file)."""
    import torch

    path = Path(path)
    if path.suffix == ".pt2":
        raise ModelError("Model files are TorchScript (.pt): torch.export archives (.pt2) are not read back, "
                         "because their reader can run code from the file.")
    if not isinstance(module, torch.jit.ScriptModule):
        raise ModelError("Only a TorchScript module can be saved; script the network first (torch.jit.script).")
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {METADATA_FILE: json.dumps(metadata, indent=1, sort_keys=True)}
    with quiet_torchscript():
        torch.jit.save(module, str(path), _extra_files=extra)
    return path


def check_model_archive(path: Path) -> None:
    """:class:`ModelError` unless ``path`` is a TorchScript archive: a zip file with the folder of
    TorchScript code and constants that ``torch.jit.save`` writes. Checked before torch reads the
    file, so a pickle (``torch.save``) or a ``torch.export`` archive never reaches an unpickler."""
    if path.suffix == ".pt2":
        raise ModelError(f"{path}: torch.export archives (.pt2) are not loaded, because their reader unpickles "
                         f"parts of the file with Python's pickle, which can run code. Save the model as "
                         f"TorchScript (.pt).")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable TorchScript model file (truncated, corrupt, or a plain "
                         f"pickle?): {exc}") from exc
    roots = {name.split("/", 1)[0] for name in names}
    script = any(f"{root}/constants.pkl" in names and any(n.startswith(f"{root}/code/") for n in names)
                 for root in roots)
    if not script:
        raise ModelError(f"{path}: not a TorchScript model file (a zip archive without TorchScript code: a "
                         f"torch.save pickle or a torch.export archive?). Model files are written by "
                         f"ovito-mlclass training or torch.jit.save.")


def load_model_file(path) -> tuple[object, dict, Path]:
    """The TorchScript network (on the CPU), the metadata record and the path of a file written by
    :func:`save_model_file`; :class:`ModelError` for anything else (checked before torch reads it:
    :func:`check_model_archive`), a corrupt file, or one without our metadata."""
    import torch

    path = Path(path)
    check_model_archive(path)
    extra = {METADATA_FILE: ""}
    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a readable TorchScript model file (truncated or corrupt?): {first}") from exc
    text = extra[METADATA_FILE]
    if not text:
        raise ModelError(f"{path}: the file holds a network but no ovito-mlclass metadata "
                         f"('{METADATA_FILE}'); it was not written by ovito-mlclass.")
    try:
        metadata = json.loads(text.decode() if isinstance(text, bytes) else text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: the ovito-mlclass metadata are not valid JSON ({exc}).") from exc
    return module, metadata, path


def embed_all(module, features, batch: int, device: str = "cpu"):
    """``module.embed`` of every row of ``features``, ``batch`` rows at a time (run on ``device``),
    into one CPU tensor allocated up front: collecting per-batch results and concatenating them
    would leave each small result between the freed activations of the next batches, and the heap
    (hence the resident memory) then grows with the frame."""
    import torch

    h = None
    for start in range(0, len(features), batch):
        x = torch.from_numpy(np.ascontiguousarray(features[start:start + batch], dtype=np.float32))
        out = module.embed(x.to(device)).cpu()
        if h is None:
            h = torch.empty((len(features), out.shape[1]), dtype=out.dtype)
        h[start:start + len(out)] = out
    return h if h is not None else torch.zeros((0, 1))


def compiled_embedding(module, where: str = "model"):
    """``module.embed`` run by the compiled kernel (``cpp_kernels/pointnet.cpp``): a function from
    features (NumPy, ``(n, 3 * n_points)``) to the pooled vectors (CPU tensor), or ``None`` where the
    kernel does not apply: no compiled kernels, or a network that is not the PointNet of
    ``training/network.py`` (its per-point layers alternate Linear and ReLU). Same arithmetic in
    float32; faster than the frozen TorchScript module because an atom's activations stay in
    registers and L1 instead of passing through memory between operators. Checked against ``module.embed`` on a few random clouds before use: a
    network that differs in some other way keeps running in TorchScript, with a warning."""
    import torch

    from ._compiled import COMPILED, kernels

    if not COMPILED or getattr(module, "original_name", None) != "PointNet":
        return None
    try:
        layers = [child for _, child in module.points.named_children()]
        if [c.original_name for c in layers] != ["ReLU"] + ["Linear", "ReLU"] * ((len(layers) - 1) // 2):
            return None
        as_array = lambda t: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
        n_points = int(module.n_points)
        args = (n_points, as_array(module.first.weight), as_array(module.first.bias),
                [as_array(c.weight) for c in layers[1::2]], [as_array(c.bias) for c in layers[1::2]],
                float(module.align_radius))
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None

    def embed(features):
        return torch.from_numpy(kernels.pointnet_embed(features, *args))

    # random clouds with at least two points inside the alignment radius: a lone nearest point would
    # leave the frame's second axis to rounding, in any implementation
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(16, n_points, 3))
    lengths = np.sort(rng.uniform(0.7, 1.6, size=(16, n_points, 1)), axis=1)
    lengths[:, :2] = rng.uniform(0.7, 0.95, size=(16, min(2, n_points), 1))
    lengths *= args[-1] if args[-1] > 0 else 1.0
    clouds = (directions / np.linalg.norm(directions, axis=2, keepdims=True) * lengths).reshape(16, -1)
    with torch.no_grad():
        expected = module.embed(torch.from_numpy(clouds.astype(np.float32)))
    if not torch.allclose(embed(clouds), expected, rtol=1e-4, atol=1e-4):
        warnings.warn(f"{where}: the compiled PointNet kernel does not reproduce this network's embed; running it "
                      f"in TorchScript instead (slower).", RuntimeWarning, stacklevel=3)
        return None
    return embed


def compiled_network(module, novelty: bool):
    """The forward pass of ``training/network.py``'s StructureNet run by the compiled kernel
    (``cpp_kernels/structure_net.cpp``): a function from features (NumPy, ``(n, n_features)``) to
    (class posteriors, site posteriors or None, novelty or None), or ``None`` where the kernel does
    not apply: no compiled kernels, or a network of another kind (its hidden layers alternate Linear
    and SiLU). Same arithmetic in float32, several times faster than the TorchScript module: a block
    of atoms passes through the whole network in cache, where torch makes a pass through memory
    per operator. The caller checks it against the module before use (a network that differs in
    some other way runs in TorchScript)."""
    from ._compiled import COMPILED, kernels

    if not COMPILED or getattr(module, "original_name", None) != "StructureNet":
        return None
    try:
        layers = [child for _, child in module.body.named_children()]
        if [c.original_name for c in layers] != ["Linear", "SiLU"] * (len(layers) // 2) or len(layers) % 2:
            return None
        as_array = lambda t: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
        args = (as_array(module.mean), as_array(module.inv_std), [as_array(c.weight) for c in layers[::2]],
                [as_array(c.bias) for c in layers[::2]], as_array(module.classes.weight), as_array(module.classes.bias),
                as_array(module.sites.weight), as_array(module.sites.bias), int(module.n_sites))
        extra = (as_array(module.novelty_means), as_array(module.novelty_factors),
                 as_array(module.novelty_scales)) if novelty else ()
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None
    return lambda features: kernels.structure_net(features, *args, *extra)


def neighbor_mean(h, neighbors):
    """Row i of the result: the mean of ``h`` over row i and the rows ``neighbors[i]`` (-1 entries,
    missing neighbours, left out of the mean). ``h``: ``(n, F)`` tensor; ``neighbors``: ``(n, k)``
    int64 tensor. One pass, no ``(n, k, F)`` temporary: the compiled kernel for float32 CPU tensors
    outside autograd, else ``embedding_bag``."""
    import torch

    from ._compiled import COMPILED, kernels

    if (COMPILED and h.device.type == "cpu" and h.dtype == torch.float32 and neighbors.device.type == "cpu"
            and not (torch.is_grad_enabled() and h.requires_grad)):
        return torch.from_numpy(kernels.neighbor_mean(h.numpy(), neighbors.numpy()))
    n = h.shape[0]
    rows = torch.cat([torch.arange(n, dtype=torch.int64).unsqueeze(1), neighbors], dim=1)
    rows = torch.where(rows < 0, torch.full_like(rows, n), rows)          # missing -> the padding row n
    table = torch.cat([h, h.new_zeros((1, h.shape[1]))])
    return torch.nn.functional.embedding_bag(rows, table, mode="mean", padding_idx=n)

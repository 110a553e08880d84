"""The benchmark of DMLP: one script per question, as scikit-learn's ``benchmarks/``.

It lives at the repository root, beside ``dmlp/``, and is not installed with the package: it
needs the repository's data layout.  Each script runs on its own (``python
benchmarks/speed.py --help``) or through ``dmlp benchmark QUESTION`` (:mod:`benchmarks.cli`):

=====================  ==============================================================
quality.py             labels against the baselines, per CIFAR-10 setting, with histories
speed.py               seconds per phase of a whole CIFAR-10 run, on the hardware it names
scale.py               Clothing1M-shaped synthetic data: 10 min / 12 GB, slopes in N and d
feature_set_quality.py the quality table across feature sets
config_ablation.py     the default against config variants: accuracy and agreement
oracle_ceiling.py      clean-label evidence with the true T: what is left to gain
knn_search.py          the kNN search against faiss: recall and seconds
gpu_check.py           speed, CPU/GPU agreement, 100/1,000 classes and scale in one call
feature_sets.py        builds the extra feature sets (raw backbone, 100 and 1,000 classes)
=====================  ==============================================================

Shared pieces: :mod:`benchmarks.loader` (data, noise, settings), :mod:`benchmarks.measure`
(peak memory, phases), :mod:`benchmarks.hardware` (CPU model and extensions),
:mod:`benchmarks.output` (Markdown, CSV), :mod:`benchmarks.clothing_like` (the synthetic set),
:mod:`benchmarks.ablations` and :mod:`benchmarks.quality_tables` (the quality table's rows).
"""

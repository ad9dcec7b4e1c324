"""Codebook initialisation: PCA (variance-scaled), random, or data samples.

All functions return a codebook of shape (n_units, n_features) in float64, in
the map's internal frame. They take either data already in that frame
(``frame=None``) or raw data plus the frame (``x * scale - offset``), which they
apply block by block so that the data are never copied whole.
"""

import numpy as np
from sklearn.utils.extmath import svd_flip

from somgen._bmu import _to_frame

# Above this many features, the leading two components come from a randomized SVD
# instead of the eigendecomposition of the full covariance matrix.
_EXACT_PCA_MAX_FEATURES = 2000
# Rows per block when accumulating the covariance in float64.
_COV_CHUNK = 8192
# Subspace iterations of the randomized path, and its oversampling.
_POWER_ITERATIONS = 7
_OVERSAMPLES = 10


def _blocks(X, frame):
    """Yield float64 row blocks of ``X`` in the internal frame."""
    for start in range(0, X.shape[0], _COV_CHUNK):
        block = X[start : start + _COV_CHUNK]
        if frame is None:
            yield np.asarray(block, dtype=np.float64)
        else:
            yield _to_frame(block, frame, np.empty(block.shape))


def _randomized_components(X, frame, k, random_state):
    """Leading ``k`` eigenpairs of ``X^T X / n`` by randomized subspace iteration.

    Every product with the covariance is one chunked pass over ``X``
    (``X^T (X V)``), so the (n_features, n_features) matrix is never formed.
    """
    n_samples, n_features = X.shape
    width = min(n_features, k + _OVERSAMPLES)
    basis = random_state.normal(size=(n_features, width))
    for _ in range(_POWER_ITERATIONS):
        basis, _ = np.linalg.qr(basis)
        product = np.zeros((n_features, width))
        for block in _blocks(X, frame):
            product += block.T @ (block @ basis)
        basis = product
    basis, _ = np.linalg.qr(basis)
    # Rayleigh-Ritz on the final subspace.
    projected = np.zeros((width, width))
    for block in _blocks(X, frame):
        reduced = block @ basis
        projected += reduced.T @ reduced
    eigval, eigvec = np.linalg.eigh(projected / n_samples)
    order = np.argsort(eigval)[::-1][:k]
    return (basis @ eigvec[:, order]).T, np.maximum(eigval[order], 0.0)


def _leading_components(Xc, random_state, frame=None):
    """Two leading principal axes and their variances.

    Returns ``(components, variances)`` of shapes (2, n_features) and (2,). When
    the data have fewer than two directions of variance (a single sample, a
    single feature, or collinear points), the missing variances are zero, so the
    corresponding grid axis collapses instead of failing.
    """
    n_samples, n_features = Xc.shape
    components = np.zeros((2, n_features))
    variances = np.zeros(2)
    if n_samples < 2:
        components[0, 0] = 1.0
        if n_features > 1:
            components[1, 1] = 1.0
        return components, variances
    k = min(2, n_features)
    if n_features <= _EXACT_PCA_MAX_FEATURES:
        cov = np.zeros((n_features, n_features))
        for block in _blocks(Xc, frame):
            cov += block.T @ block
        cov /= n_samples
        eigval, eigvec = np.linalg.eigh(cov)
        order = np.argsort(eigval)[::-1][:k]
        vecs = eigvec[:, order].T
        vals = np.maximum(eigval[order], 0.0)
    else:
        vecs, vals = _randomized_components(Xc, frame, k, random_state)
    # Deterministic sign: the largest-magnitude loading of each axis is positive.
    _, vecs = svd_flip(np.zeros((1, k)), vecs, u_based_decision=False)
    components[:k] = vecs
    variances[:k] = vals
    if k == 1:
        components[1, 0] = 1.0  # any axis: its variance is zero
    return components, variances


def _pca_init(Xc, unit_coords, random_state, frame=None):
    """Lay the grid flat on the plane of the two leading principal components.

    The grid's longer side follows the first component. Grid coordinates are
    rescaled to ``[-1, 1]`` on each axis and multiplied by the standard deviation
    of the data along the matching component, so the initial map spans one
    standard deviation either side of the mean.
    """
    components, variances = _leading_components(Xc, random_state, frame)
    coords = unit_coords - unit_coords.mean(axis=0)
    half_span = np.abs(coords).max(axis=0)
    half_span[half_span == 0] = 1.0
    coords = coords / half_span
    # Longer side of the grid (by extent) first.
    if np.ptp(unit_coords[:, 1]) > np.ptp(unit_coords[:, 0]):
        coords = coords[:, ::-1]
    scaled = components * np.sqrt(variances)[:, None]
    return coords @ scaled


def _random_init(Xc, n_units, random_state, box=None):
    """Prototypes drawn uniformly in the bounding box of the data.

    ``box`` is ``(low, high)`` in the internal frame; by default the box of
    ``Xc``, which is then taken to be in that frame.
    """
    if box is None:
        low = Xc.min(axis=0).astype(np.float64)
        high = Xc.max(axis=0).astype(np.float64)
    else:
        low, high = (np.asarray(b, dtype=np.float64) for b in box)
    return random_state.uniform(size=(n_units, Xc.shape[1])) * (high - low) + low


def _sample_init(Xc, n_units, random_state, frame=None):
    """Prototypes copied from randomly chosen samples (with replacement only when
    there are fewer samples than units)."""
    n_samples = Xc.shape[0]
    idx = random_state.choice(n_samples, n_units, replace=n_samples < n_units)
    if frame is None:
        return Xc[idx].astype(np.float64)
    return _to_frame(Xc[idx], frame, np.empty((n_units, Xc.shape[1])))

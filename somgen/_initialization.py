"""Codebook initialisation: PCA (variance-scaled), random, or data samples.

All functions take the *centred* data (``X - offset``) and return a centred
codebook of shape (n_units, n_features) in float64.
"""

import numpy as np
from sklearn.utils.extmath import randomized_svd, svd_flip

# Above this many features, the leading two components come from a randomized SVD
# instead of the eigendecomposition of the full covariance matrix.
_EXACT_PCA_MAX_FEATURES = 2000
# Rows per block when accumulating the covariance in float64.
_COV_CHUNK = 8192


def _leading_components(Xc, random_state):
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
        for start in range(0, n_samples, _COV_CHUNK):
            block = np.asarray(Xc[start : start + _COV_CHUNK], dtype=np.float64)
            cov += block.T @ block
        cov /= n_samples
        eigval, eigvec = np.linalg.eigh(cov)
        order = np.argsort(eigval)[::-1][:k]
        vecs = eigvec[:, order].T
        vals = np.maximum(eigval[order], 0.0)
    else:
        _, s, vecs = randomized_svd(Xc, k, random_state=random_state)
        vals = s**2 / n_samples
    # Deterministic sign: the largest-magnitude loading of each axis is positive.
    _, vecs = svd_flip(np.zeros((1, k)), vecs, u_based_decision=False)
    components[:k] = vecs
    variances[:k] = vals
    if k == 1:
        components[1, 0] = 1.0  # any axis: its variance is zero
    return components, variances


def _pca_init(Xc, unit_coords, random_state):
    """Lay the grid flat on the plane of the two leading principal components.

    The grid's longer side follows the first component. Grid coordinates are
    rescaled to ``[-1, 1]`` on each axis and multiplied by the standard deviation
    of the data along the matching component, so the initial map spans one
    standard deviation either side of the mean.
    """
    components, variances = _leading_components(Xc, random_state)
    coords = unit_coords - unit_coords.mean(axis=0)
    half_span = np.abs(coords).max(axis=0)
    half_span[half_span == 0] = 1.0
    coords = coords / half_span
    # Longer side of the grid (by extent) first.
    if np.ptp(unit_coords[:, 1]) > np.ptp(unit_coords[:, 0]):
        coords = coords[:, ::-1]
    scaled = components * np.sqrt(variances)[:, None]
    return coords @ scaled


def _random_init(Xc, n_units, random_state):
    """Prototypes drawn uniformly in the bounding box of the data."""
    low = Xc.min(axis=0).astype(np.float64)
    high = Xc.max(axis=0).astype(np.float64)
    return random_state.uniform(size=(n_units, Xc.shape[1])) * (high - low) + low


def _sample_init(Xc, n_units, random_state):
    """Prototypes copied from randomly chosen samples (with replacement only when
    there are fewer samples than units)."""
    n_samples = Xc.shape[0]
    idx = random_state.choice(n_samples, n_units, replace=n_samples < n_units)
    return Xc[idx].astype(np.float64)

"""Codebook initialisation: PCA (variance-scaled), random, or data samples.

All functions return a codebook of shape (n_units, n_features) in float64, in
the map's internal frame. They take either data already in that frame
(``frame=None``) or raw data plus the frame (``x * scale - offset``), which they
apply block by block so that the data are never copied whole.

Missing values (NaN) are imputed by the feature means for the PCA: the frame's
offset is the mean of the observed values, so in the internal frame a missing
entry is 0, and the covariance is ``X0^T X0 / n`` with ``X0`` the centred data
with NaN set to 0. The choice keeps one code path for the exact and the
randomized PCA (a pairwise-complete covariance cannot be applied blockwise as
an operator, and need not be positive semi-definite); the variances shrink by
about the fraction of missing values, which only makes the initial map a
little narrower. Prototypes copied from samples (``"sample"``) take the mean
for their missing features.

Sparse data are never centred: the covariance of ``x * scale - offset`` is
applied as ``scale^2 X^T X - scale (s o^T + o s^T) + n o o^T`` (``s`` the column
sums, ``o`` the offset), by sparse products.
"""

import numpy as np
from scipy import sparse
from sklearn.utils.extmath import svd_flip

from somgen._bmu import _Frame, _to_frame

# Above this many features, the leading two components come from a randomized SVD
# instead of the eigendecomposition of the full covariance matrix.
_EXACT_PCA_MAX_FEATURES = 2000
# Default size of a map sized from the data (see _data_sized_grid): about
# 2 sqrt(n) units, and never fewer than 10 samples per unit.
_UNITS_PER_SQRT_SAMPLE = 2.0
_MIN_SAMPLES_PER_UNIT = 10
# Map size of SOMGenerativeModel(som=None): the data-sized map (K units), K / 3,
# K / 9 or one unit, chosen by held-out likelihood over folds, up to this many
# samples (above: the data-sized map; the selection costs about ten fits).
# Folds: 3, and up to 10 on small data (2000 // n), where fits are cheap and
# the held-out folds tiny. Measured in benchmarks/bench_generative_size.py.
_MAP_SIZE_FRACTIONS = (1.0, 1.0 / 3.0, 1.0 / 9.0)
_MAP_SIZE_CV_SPLITS = (3, 10)
_MAP_SIZE_CV_ROWS = 2000
_MAP_SIZE_CV_MAX_SAMPLES = 10_000
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
            block = np.asarray(block, dtype=np.float64)
        else:
            block = _to_frame(block, frame, np.empty(block.shape))
        if np.isnan(np.min(block)):
            # Missing values are imputed by the mean: 0 in the internal frame.
            block = np.where(np.isnan(block), 0.0, block)
        yield block


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


class _SparseCovariance:
    """The unnormalised covariance ``sum_i c_i c_i^T`` of the rows ``c_i = x_i *
    scale - offset`` of a sparse ``X``, as an operator (X is never centred)."""

    def __init__(self, X, frame):
        self.X = sparse.csr_matrix(X).astype(np.float64, copy=False)
        self.n = X.shape[0]
        if frame is None:
            self.scale, self.offset = 1.0, np.zeros(X.shape[1])
        else:
            self.scale, self.offset = frame.scale, np.asarray(frame.offset)
        self.colsum = np.asarray(self.X.sum(axis=0)).ravel()

    def apply(self, V):
        """``C @ V`` for a dense (n_features, k) ``V``."""
        s, o, c = self.scale, self.offset, self.colsum
        out = (s * s) * (self.X.T @ (self.X @ V))
        out -= s * np.outer(c, o @ V) + s * np.outer(o, c @ V)
        out += self.n * np.outer(o, o @ V)
        return out

    def dense(self):
        """``C`` as a dense (n_features, n_features) array."""
        s, o, c = self.scale, self.offset, self.colsum
        gram = self.X.T @ self.X
        cov = gram.toarray() if sparse.issparse(gram) else np.asarray(gram)
        cov *= s * s
        # In place: O(n_features^2) once, like the dense path's covariance.
        cross = np.outer(c, o)
        cross *= s
        cov -= cross
        cov -= cross.T
        np.outer(o, o, out=cross)
        cross *= self.n
        cov += cross
        return cov


def _sparse_components(X, frame, k, random_state):
    """Leading ``k`` eigenpairs of the covariance of sparse ``X`` in the frame."""
    n_samples, n_features = X.shape
    cov = _SparseCovariance(X, frame)
    if n_features <= _EXACT_PCA_MAX_FEATURES:
        eigval, eigvec = np.linalg.eigh(cov.dense() / n_samples)
        order = np.argsort(eigval)[::-1][:k]
        return eigvec[:, order].T, np.maximum(eigval[order], 0.0)
    width = min(n_features, k + _OVERSAMPLES)
    basis = random_state.normal(size=(n_features, width))
    for _ in range(_POWER_ITERATIONS):
        basis, _ = np.linalg.qr(basis)
        basis = cov.apply(basis)
    basis, _ = np.linalg.qr(basis)
    projected = basis.T @ cov.apply(basis)
    projected = (projected + projected.T) / 2.0
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
    if sparse.issparse(Xc):
        vecs, vals = _sparse_components(Xc, frame, k, random_state)
    elif n_features <= _EXACT_PCA_MAX_FEATURES:
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
    picked = Xc[idx]
    if sparse.issparse(picked):
        picked = picked.toarray()
    if frame is None:
        codebook = picked.astype(np.float64)
    else:
        codebook = _to_frame(picked, frame, np.empty((n_units, Xc.shape[1])))
    # Missing features take the mean (0 in the internal frame).
    codebook[np.isnan(codebook)] = 0.0
    return codebook


def _data_sized_grid(X):
    """Grid shape ``(n_rows, n_cols)`` sized from the data.

    About ``2 sqrt(n)`` units (never more than ``n / 10``, at least one), with
    the sides in the ratio ``sqrt(lambda_1 / lambda_2)`` of the two leading
    principal axes, the longer side being the columns (the SOM Toolbox's
    shape rule, with fewer units: the held-out likelihood of the generative
    model, cross-validated on eight data sets, peaked near ``2 sqrt(n)``
    where the Toolbox uses ``5 n^0.54``; with fewer than ten samples per unit
    the covariances were too narrow, and on small Gaussian samples the model
    lost to a single Gaussian).
    """
    n_units = _data_sized_units(X.shape[0])
    if n_units == 1:
        return 1, 1
    return _grid_shape(n_units, _principal_variances(X))


def _principal_variances(X):
    """The two leading principal variances of ``X`` (dense with NaN, whose
    mean is that of the observed values, or sparse, never densified)."""
    if sparse.issparse(X):
        offset = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
    else:
        offset = _observed_mean(X)
    frame = _Frame(offset=offset, scale=1.0)
    return _leading_components(X, np.random.RandomState(0), frame=frame)[1]


def _observed_mean(X):
    """Float64 column means of dense ``X`` over its observed (non-NaN)
    entries, by chunks of rows (no copy of ``X``; 0 for a never-observed
    column)."""
    sums = np.zeros(X.shape[1])
    counts = np.zeros(X.shape[1])
    for start in range(0, X.shape[0], _COV_CHUNK):
        block = np.asarray(X[start : start + _COV_CHUNK], dtype=np.float64)
        observed = ~np.isnan(block)
        sums += np.where(observed, block, 0.0).sum(axis=0)
        counts += observed.sum(axis=0)
    return sums / np.maximum(counts, 1.0)


def _data_sized_units(n_samples):
    """Number of units of :func:`_data_sized_grid` for ``n_samples`` samples."""
    n_units = int(round(_UNITS_PER_SQRT_SAMPLE * np.sqrt(n_samples)))
    return max(1, min(n_units, n_samples // _MIN_SAMPLES_PER_UNIT))


def _grid_shape(n_units, variances):
    """``(n_rows, n_cols)`` of :func:`_data_sized_grid` for ``n_units`` units
    and the data's two leading principal ``variances``."""
    if variances[1] > 0.0:
        ratio = float(np.sqrt(variances[0] / variances[1]))
    else:
        ratio = float(n_units)
    ratio = min(max(ratio, 1.0), float(n_units))
    n_rows = max(1, int(round(np.sqrt(n_units / ratio))))
    n_cols = max(1, int(round(n_units / n_rows)))
    return n_rows, n_cols

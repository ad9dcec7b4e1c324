"""Training kernels of the self-organizing map: arrays in, arrays out.

Batch SOM (Kohonen's batch map). One epoch assigns every sample to its
best-matching unit (BMU) and replaces each prototype by the
neighbourhood-weighted mean of the data::

    w_k <- sum_j h(k, j) S_j / sum_j h(k, j) N_j

where ``S_j`` and ``N_j`` are the sum and the count of the samples whose BMU is
``j``. These sufficient statistics are accumulated chunk by chunk in float64 (a
map-reduce), and the neighbourhood is applied once per epoch on the
(n_units, n_features) sums, never per sample, by filtering on the grid
(O(n_units x kernel support), see ``somgen._neighborhood._smooth``).

Online SOM. For a mini-batch ``B`` the update is::

    w_k <- w_k + eta / |B| * sum_{i in B} h(k, b_i) (x_i - w_k)

which for ``|B| = 1`` is Kohonen's classic per-sample rule.

Missing values (NaN). Per-unit sums accumulate the data with NaN set to 0, and
the counts become per-unit, per-feature counts of observed values (the one-hot
product with the observation mask). Both are smoothed by the same
neighbourhood filter and divided feature by feature, so each coordinate of a
prototype is the neighbourhood-weighted mean of the values observed in that
feature; a unit whose smoothed observed weight in a feature is zero keeps its
previous value there. The online rule moves only the observed coordinates.
Chunks without NaN keep the scalar counts (and the fast path's arithmetic).

Sparse input (CSR). The sums are ``one_hot @ X`` (a sparse-sparse product, no
densification) scaled to the internal frame, minus ``counts * offset``.
"""

import numpy as np
from scipy import sparse

from somgen._bmu import (
    _augment,
    _internal_search,
    _masked_augment,
    _masked_scored_blocks,
    _missing_rows,
    _scored_blocks,
    _sparse_scored_blocks,
)
from somgen._neighborhood import _smooth
from somgen._parallel import _effective_n_threads, _map_chunks


def _one_hot(bmu, n_units):
    """(n_units, n) one-hot of the BMUs in CSC form: one entry per column
    (sample), no sort."""
    n = bmu.shape[0]
    return sparse.csc_matrix((np.ones(n), bmu, np.arange(n + 1)), shape=(n_units, n))


def _complete_statistics(X_chunk, search, frame):
    """Sums, counts and squared error of complete dense samples."""
    n = X_chunk.shape[0]
    augmented = _augment(X_chunk, frame, search.ranking.dtype)
    bmu = np.empty(n, dtype=np.intp)
    sq_error = 0.0
    for rows, best, _, best_scores, x_norm in _scored_blocks(
        X_chunk, augmented, search, second=False
    ):
        bmu[rows] = best
        sq_error += float(best_scores.sum(dtype=np.float64) + x_norm @ x_norm)
    # The column of ones of the augmented matrix yields the counts.
    stats = _one_hot(bmu, search.n_units) @ augmented
    return np.asarray(stats[:, :-1], dtype=np.float64), stats[:, -1], sq_error


def _masked_statistics(X_rows, search, frame):
    """Sums, per-feature observed counts and squared error of rows with NaN.

    The squared error is over the observed features, rescaled by
    ``n_features / n_observed``. Rows with no observed value find a BMU (at the
    frame's centre) but add nothing to the sums or counts.
    """
    n, d = X_rows.shape
    augmented, n_observed = _masked_augment(X_rows, frame, search.ranking.dtype)
    bmu = np.empty(n, dtype=np.intp)
    factor = d / np.where(n_observed > 0, n_observed, d)
    sq_error = 0.0
    for rows, best, _, best_scores, x_norm in _masked_scored_blocks(
        X_rows, augmented, search, second=False
    ):
        bmu[rows] = best
        sq = best_scores.astype(np.float64) + x_norm * x_norm
        sq_error += float(sq @ factor[rows])
    augmented[n_observed == 0, d:] = 0.0
    stats = _one_hot(bmu, search.n_units) @ augmented
    stats = np.asarray(stats, dtype=np.float64)
    return stats[:, :d], stats[:, d:], sq_error


def _sparse_statistics(X_chunk, search, frame):
    """Sums, counts and squared error of a sparse (CSR) chunk."""
    X_chunk = sparse.csr_matrix(X_chunk)
    n = X_chunk.shape[0]
    bmu = np.empty(n, dtype=np.intp)
    sq_error = 0.0
    for rows, best, _, best_scores, x_norm in _sparse_scored_blocks(
        X_chunk, search, second=False
    ):
        bmu[rows] = best
        sq_error += float(best_scores.sum(dtype=np.float64) + x_norm @ x_norm)
    one_hot = _one_hot(bmu, search.n_units)
    counts = np.asarray(one_hot.sum(axis=1), dtype=np.float64).ravel()
    raw = one_hot.tocsr() @ X_chunk.astype(np.float64, copy=False)
    sums = raw.toarray() if sparse.issparse(raw) else np.asarray(raw)
    if frame.scale != 1.0:
        sums *= frame.scale
    sums -= counts[:, None] * frame.offset
    return sums, counts, sq_error


def _chunk_statistics(X_chunk, search, frame):
    """Per-unit sums (float64) and counts of one chunk of raw samples, and the
    sum over its samples of the (approximate) squared distance to the BMU.

    BMUs are exact (see ``somgen._bmu``); sums are of the samples in the
    internal frame, as rounded to the search dtype. ``counts`` has shape
    (n_units,), or (n_units, n_features) (observed values per feature) when
    the chunk holds missing values.
    """
    if sparse.issparse(X_chunk):
        return _sparse_statistics(X_chunk, search, frame)
    missing = _missing_rows(X_chunk)
    if missing is None:
        return _complete_statistics(X_chunk, search, frame)
    sums, counts, sq_error = _masked_statistics(X_chunk[missing], search, frame)
    if not missing.all():
        part = _complete_statistics(X_chunk[~missing], search, frame)
        sums += part[0]
        counts += part[1][:, None]
        sq_error += part[2]
    return sums, counts, sq_error


def _add_counts(counts, other):
    """``counts + other`` where either may be per unit or per unit and feature."""
    if other.ndim > counts.ndim:
        return counts[:, None] + other
    if other.ndim < counts.ndim:
        counts += other[:, None]
        return counts
    counts += other
    return counts


def _batch_statistics(X, frame, codebook, n_jobs=None):
    """Sufficient statistics of one batch epoch over all chunks.

    Parameters
    ----------
    X : {ndarray, CSR matrix} of shape (n_samples, n_features)
        Raw data, float32 or float64 (never copied whole); dense data may hold
        NaN for missing values.
    frame : somgen._bmu._Frame
        The map's internal frame.
    codebook : ndarray of shape (n_units, n_features)
        Codebook in the internal frame, float64.
    n_jobs : int, default=None
        Threads over chunks; the result does not depend on it.

    Returns
    -------
    sums : ndarray of shape (n_units, n_features), float64
        Per-unit sums of the samples, in the internal frame.
    counts : ndarray of shape (n_units,) or (n_units, n_features), float64
        Samples per unit; per unit and feature (observed values) when X holds
        missing values.
    sq_error : float
        Sum over samples of the squared distance to the BMU in the internal
        frame (from the ranking scores, so with the rounding of X's dtype).
    """
    search = _internal_search(codebook, frame, X.dtype)

    def work(chunk):
        return _chunk_statistics(chunk, search, frame)

    def add(acc, part):
        sums, counts, sq_error = acc
        sums += part[0]  # in place: the first chunk's arrays are ours
        return sums, _add_counts(counts, part[1]), sq_error + part[2]

    if X.shape[0] == 0:
        return np.zeros(codebook.shape), np.zeros(codebook.shape[0]), 0.0
    # Reduced in chunk order as results arrive: bit-identical for any n_jobs,
    # and O(n_threads) partial sums alive at a time.
    sums, counts, sq_error = _map_chunks(
        work, X, search.n_units, _effective_n_threads(n_jobs), reduce=add
    )
    return sums, counts, sq_error


def _smooth_statistics(sums, counts, codebook, grid, sigma, kind):
    """New batch-SOM codebook from per-unit statistics.

    ``H @ sums / H @ counts`` with the neighbourhood matrix ``H``, computed by
    ``somgen._neighborhood._smooth`` in O(n_units x kernel support) without
    forming ``H``. A unit whose neighbourhood holds no data (zero, or for the
    Mexican hat a non-positive, weighted count) keeps its previous prototype.
    With per-feature ``counts`` of shape (n_units, n_features) (missing values)
    the division is feature by feature, and a unit keeps its previous value in
    each feature without positive smoothed observed weight.

    ``grid`` holds ``n_rows``, ``n_cols``, ``topology`` and ``periodic``.

    Returns
    -------
    new_codebook : ndarray of shape (n_units, n_features), float64
    """
    if counts.ndim == 2:
        # Missing values: one smoothed count per unit and feature.
        d = sums.shape[1]
        smoothed = _smooth(np.hstack([sums, counts]), sigma=sigma, kind=kind, **grid)
        num, den = smoothed[:, :d], smoothed[:, d:]
        new = np.array(codebook, dtype=np.float64, copy=True)
        ok = den > 1e-12 * np.maximum(counts.sum(axis=0), 1.0)
        new[ok] = num[ok] / den[ok]
        return new
    stacked = np.column_stack([sums, counts])
    smoothed = _smooth(stacked, sigma=sigma, kind=kind, **grid)
    num, den = smoothed[:, :-1], smoothed[:, -1]
    new = np.array(codebook, dtype=np.float64, copy=True)
    ok = den > 1e-12 * max(counts.sum(), 1.0)
    new[ok] = num[ok] / den[ok, None]
    return new


def _online_update(codebook, X_batch, bmu, h_rows, learning_rate):
    """One online (mini-batch) step, in place on a float64 codebook.

    Parameters
    ----------
    codebook : ndarray of shape (n_units, n_features), float64
        Updated in place.
    X_batch : ndarray of shape (batch, n_features)
    bmu : ndarray of shape (batch,)
    h_rows : ndarray of shape (batch, n_units)
        Neighbourhood weights ``h(b_i, k)`` of each sample's BMU.
    learning_rate : float
    """
    scale = learning_rate / X_batch.shape[0]
    X_batch = np.asarray(X_batch, dtype=np.float64)
    observed = ~np.isnan(X_batch)
    if not observed.all():
        # Only observed coordinates move: sum_i h_ik m_ij (x_ij - w_kj).
        pull = h_rows.T @ np.where(observed, X_batch, 0.0)
        pull -= (h_rows.T @ observed) * codebook
    else:
        # sum_i h_ik x_i  -  (sum_i h_ik) w_k
        pull = h_rows.T @ X_batch
        pull -= h_rows.sum(axis=0)[:, None] * codebook
    codebook += scale * pull
    return codebook


def _sparse_online_update(codebook, X_batch, frame, bmu, h_rows, learning_rate):
    """:func:`_online_update` for a raw sparse mini-batch (never densified):
    ``sum_i h_ik (x_i * scale - offset - w_k)``."""
    scale = learning_rate / X_batch.shape[0]
    pull = np.asarray(X_batch.T.astype(np.float64) @ h_rows).T
    if frame.scale != 1.0:
        pull *= frame.scale
    pull -= h_rows.sum(axis=0)[:, None] * (codebook + frame.offset)
    codebook += scale * pull
    return codebook

"""Training kernels of the self-organizing map: arrays in, arrays out.

Batch SOM (Kohonen's batch map). One epoch assigns every sample to its
best-matching unit (BMU) and replaces each prototype by the
neighbourhood-weighted mean of the data::

    w_k <- sum_j h(k, j) S_j / sum_j h(k, j) N_j

where ``S_j`` and ``N_j`` are the sum and the count of the samples whose BMU is
``j``. These sufficient statistics are accumulated chunk by chunk in float64 (a
map-reduce), and the neighbourhood is applied once per epoch on the
(n_units, n_features) sums, never per sample.

Online SOM. For a mini-batch ``B`` the update is::

    w_k <- w_k + eta / |B| * sum_{i in B} h(k, b_i) (x_i - w_k)

which for ``|B| = 1`` is Kohonen's classic per-sample rule.
"""

import numpy as np
from scipy import sparse

from somgen._bmu import _augment, _internal_search, _scored_blocks
from somgen._neighborhood import _neighborhood_weights
from somgen._parallel import _effective_n_threads, _map_chunks
from somgen._topology import _pairwise_grid_sq_distances

# Rows of the (block, n_units) neighbourhood matrix built at a time.
_KERNEL_BLOCK_ELEMENTS = 1 << 22


def _chunk_statistics(X_chunk, search, frame):
    """Per-unit sums (float64) and counts of one chunk of raw samples, and the
    sum over its samples of the (approximate) squared distance to the BMU.

    BMUs are exact (see ``somgen._bmu``); sums are of the samples in the
    internal frame, as rounded to the search dtype.
    """
    n = X_chunk.shape[0]
    n_units = search.n_units
    augmented = _augment(X_chunk, frame, search.ranking.dtype)
    bmu = np.empty(n, dtype=np.intp)
    sq_error = 0.0
    for rows, best, _, best_scores, x_norm in _scored_blocks(
        X_chunk, augmented, search, second=False
    ):
        bmu[rows] = best
        sq_error += float(best_scores.sum(dtype=np.float64) + x_norm @ x_norm)
    # One-hot of the BMUs in CSC form: one entry per column (sample), no sort.
    # The column of ones of the augmented matrix yields the counts.
    onehot = sparse.csc_matrix((np.ones(n), bmu, np.arange(n + 1)), shape=(n_units, n))
    stats = onehot @ augmented
    return np.asarray(stats[:, :-1], dtype=np.float64), stats[:, -1], sq_error


def _batch_statistics(X, frame, codebook, n_jobs=None):
    """Sufficient statistics of one batch epoch over all chunks.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Raw data, float32 or float64 (never copied whole).
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
    counts : ndarray of shape (n_units,), float64
    sq_error : float
        Sum over samples of the squared distance to the BMU in the internal
        frame (from the ranking scores, so with the rounding of X's dtype).
    """
    search = _internal_search(codebook, frame, X.dtype)

    def work(chunk):
        return _chunk_statistics(chunk, search, frame)

    parts = _map_chunks(work, X, search.n_units, _effective_n_threads(n_jobs))
    # Reduce in chunk order: bit-identical for any n_jobs.
    sums = np.zeros(codebook.shape)
    counts = np.zeros(codebook.shape[0])
    sq_error = 0.0
    for part_sums, part_counts, part_error in parts:
        sums += part_sums
        counts += part_counts
        sq_error += part_error
    return sums, counts, sq_error


def _neighborhood_blocks(unit_coords, grid, sigma, kind, grid_sq=None):
    """Yield ``(rows, H_block)`` with ``H_block = h(rows, all units)``.

    ``grid`` holds the keyword arguments of ``_pairwise_grid_sq_distances``.
    Memory is bounded by ``_KERNEL_BLOCK_ELEMENTS`` whatever the map size, unless
    the caller passes the full matrix of squared grid distances ``grid_sq``
    (cached over epochs for small maps).
    """
    if grid_sq is not None:
        yield slice(None), _neighborhood_weights(grid_sq, sigma, kind)
        return
    n_units = unit_coords.shape[0]
    block = max(1, _KERNEL_BLOCK_ELEMENTS // n_units)
    for start in range(0, n_units, block):
        rows = slice(start, min(start + block, n_units))
        sq = _pairwise_grid_sq_distances(unit_coords[rows], unit_coords, **grid)
        yield rows, _neighborhood_weights(sq, sigma, kind)


def _smooth_statistics(
    sums, counts, codebook, unit_coords, grid, sigma, kind, grid_sq=None
):
    """New batch-SOM codebook from per-unit statistics.

    A unit whose neighbourhood holds no data (zero, or for the Mexican hat a
    non-positive, weighted count) keeps its previous prototype.

    Returns
    -------
    new_codebook : ndarray of shape (n_units, n_features), float64
    """
    new = np.array(codebook, dtype=np.float64, copy=True)
    for rows, h in _neighborhood_blocks(unit_coords, grid, sigma, kind, grid_sq):
        num = h @ sums
        den = h @ counts
        ok = den > 1e-12 * max(counts.sum(), 1.0)
        new[rows][ok] = num[ok] / den[ok, None]  # basic slice: a view of new
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
    # sum_i h_ik x_i  -  (sum_i h_ik) w_k
    pull = h_rows.T @ np.asarray(X_batch, dtype=np.float64)
    pull -= h_rows.sum(axis=0)[:, None] * codebook
    codebook += scale * pull
    return codebook

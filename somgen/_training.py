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

from somgen._bmu import _chunk_slices, _map_chunks, _prepare_codebook, _scored_blocks
from somgen._neighborhood import _neighborhood_weights
from somgen._topology import _pairwise_grid_sq_distances

# Rows of the (block, n_units) neighbourhood matrix built at a time.
_KERNEL_BLOCK_ELEMENTS = 1 << 22


def _chunk_statistics(X_chunk, ranking, n_units):
    """Per-unit sums (float64) and counts of one chunk, and the sum over its
    samples of the minimum ranking score ``||w||^2 - 2 x.w``."""
    n = X_chunk.shape[0]
    bmu = np.empty(n, dtype=np.intp)
    min_scores = 0.0
    for rows, scores in _scored_blocks(X_chunk, ranking):
        np.argmin(scores, axis=1, out=bmu[rows])
        picked = scores[np.arange(scores.shape[0]), bmu[rows]]
        min_scores += float(picked.sum(dtype=np.float64))
    # One-hot of the BMUs in CSC form: one entry per column (sample), no sort.
    onehot = sparse.csc_matrix((np.ones(n), bmu, np.arange(n + 1)), shape=(n_units, n))
    sums = onehot @ np.asarray(X_chunk, dtype=np.float64)
    counts = np.bincount(bmu, minlength=n_units).astype(np.float64)
    return sums, counts, min_scores


def _sum_sq_norms(X):
    """``sum_i ||x_i||^2`` in float64, by chunks."""
    total = 0.0
    for s in _chunk_slices(X.shape[0], X.shape[1]):
        total += float(np.einsum("ij,ij->", X[s], X[s], dtype=np.float64))
    return total


def _batch_statistics(X, codebook, n_jobs=None, *, sum_sq_norms=None):
    """Sufficient statistics of one batch epoch over all chunks.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Centred data, float32 or float64.
    codebook : ndarray of shape (n_units, n_features)
        Centred codebook.
    n_jobs : int, default=None
    sum_sq_norms : float, default=None
        ``sum_i ||x_i||^2``, constant over epochs: pass it to avoid recomputing
        it every epoch.

    Returns
    -------
    sums : ndarray of shape (n_units, n_features), float64
    counts : ndarray of shape (n_units,), float64
    sq_error : float
        Sum over samples of the squared distance to the BMU (from the ranking
        scores, so with the rounding of X's dtype).
    """
    n_units = codebook.shape[0]
    ranking = _prepare_codebook(codebook, X.dtype)

    def work(chunk):
        return _chunk_statistics(chunk, ranking, n_units)

    parts = _map_chunks(work, X, n_units, n_jobs)
    # Reduce in chunk order: bit-identical for any n_jobs.
    sums = np.zeros((n_units, X.shape[1]))
    counts = np.zeros(n_units)
    sq_error = _sum_sq_norms(X) if sum_sq_norms is None else sum_sq_norms
    for part_sums, part_counts, part_min in parts:
        sums += part_sums
        counts += part_counts
        sq_error += part_min
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

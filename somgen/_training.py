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
"""

import numpy as np
from scipy import sparse

from somgen._bmu import _augment, _internal_search, _scored_blocks
from somgen._neighborhood import _smooth
from somgen._parallel import _effective_n_threads, _map_chunks


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

    def add(acc, part):
        sums, counts, sq_error = acc
        sums += part[0]  # in place: the first chunk's arrays are ours
        counts += part[1]
        return sums, counts, sq_error + part[2]

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

    ``grid`` holds ``n_rows``, ``n_cols``, ``topology`` and ``periodic``.

    Returns
    -------
    new_codebook : ndarray of shape (n_units, n_features), float64
    """
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
    # sum_i h_ik x_i  -  (sum_i h_ik) w_k
    pull = h_rows.T @ np.asarray(X_batch, dtype=np.float64)
    pull -= h_rows.sum(axis=0)[:, None] * codebook
    codebook += scale * pull
    return codebook

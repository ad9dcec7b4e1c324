"""Validation helpers shared by the estimators."""

import contextlib
import warnings

import numpy as np
from scipy import sparse

from somgen._parallel import _chunk_slices


@contextlib.contextmanager
def _restore_on_failure(estimator):
    """Leave ``estimator`` exactly as it was if the enclosed block raises.

    ``validate_data(reset=True)`` and the fitting code set attributes one by one;
    a failure half-way would leave a previously fitted model inconsistent (new
    ``n_features_in_``, old codebook). Restoring the instance dictionary makes a
    failed ``fit`` a no-op.
    """
    state = dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(state)
        raise


def _check_missing_values(
    X, *, require_features=False, empty_rows="raise", feature_names=None
):
    """Check the missing values (NaN) of validated float data.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Data already validated with ``ensure_all_finite="allow-nan"`` (so inf
        has been rejected).
    require_features : bool, default=False
        Raise if a feature has no observed value (training data: its mean and
        prototypes would be undefined).
    empty_rows : {"raise", "warn"}, default="raise"
        What to do with samples that have no observed value: raise a
        ValueError naming them, or warn (UserWarning) naming them.
    feature_names : array-like of str, default=None
        Names of the features, used in the error messages.

    Raises
    ------
    ValueError
        If a sparse matrix stores NaN (missing values are supported in dense
        input only), or as requested above.
    """
    if sparse.issparse(X):
        if X.dtype.kind == "f" and np.isnan(X.data).any():
            raise ValueError(
                "Input X contains NaN stored in a sparse matrix. Missing values "
                "are supported in dense input only: pass a dense array with NaN "
                "for missing entries, or a sparse matrix without NaN."
            )
        return
    if X.size == 0 or not np.isnan(np.min(X)):
        return
    empty = []
    observed = np.zeros(X.shape[1], dtype=np.int64)
    for s in _chunk_slices(X.shape[0], 1, X.shape[1]):
        mask = ~np.isnan(X[s])
        empty.extend((np.flatnonzero(~mask.any(axis=1)) + s.start).tolist())
        observed += mask.sum(axis=0)
    if require_features and not observed.all():
        never = np.flatnonzero(observed == 0)[:10].tolist()
        if feature_names is not None:
            never = [f"{j} ({feature_names[j]!r})" for j in never]
        raise ValueError(
            f"Input X has no observed value in feature(s) {never} "
            f"(only NaN): a feature never observed cannot be learned. Drop it "
            "or provide at least one value."
        )
    if empty:
        message = (
            f"Input X has {len(empty)} sample(s) with no observed value (only "
            f"NaN), at row(s) {empty[:10]}" + (" ..." if len(empty) > 10 else "")
        )
        if empty_rows == "raise":
            raise ValueError(message + ": their distance to a prototype is undefined.")
        warnings.warn(
            message + ": they are imputed by the training mean (their best "
            "unit is the unit closest to the mean) and do not move any "
            "prototype.",
            UserWarning,
            stacklevel=3,
        )

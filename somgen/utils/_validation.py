"""Validation helpers shared by the estimators."""

import contextlib


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

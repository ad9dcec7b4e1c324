"""scikit-learn's estimator contract, with no expected failures."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KernelDensity
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_estimators_partial_fit_n_features,
    check_get_feature_names_out_error,
    check_global_output_transform_pandas,
    check_global_set_output_transform_polars,
    check_n_features_in_after_fitting,
    check_param_validation,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_set_output_transform_polars,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    parametrize_with_checks,
)

from somgen import SelfOrganizingMap, SOMGenerativeModel

ESTIMATORS = [
    SelfOrganizingMap(),
    SelfOrganizingMap(4, 3, topology="hexagonal", periodic=True, random_state=0),
    SelfOrganizingMap(
        3,
        5,
        algorithm="online",
        batch_size=4,
        n_epochs=3,
        neighborhood="bubble",
        init="random",
        random_state=0,
    ),
]


DENSITY_ESTIMATORS = [
    SOMGenerativeModel(),
    SOMGenerativeModel(
        SelfOrganizingMap(3, 3), covariance_type="full", refine=None, random_state=0
    ),
    SOMGenerativeModel(
        SelfOrganizingMap(2, 4, topology="hexagonal"),
        covariance_type="spherical",
        latent_density=KernelDensity(bandwidth=0.5),
        random_state=0,
    ),
]


@parametrize_with_checks(ESTIMATORS + DENSITY_ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS + DENSITY_ESTIMATORS, ids=repr)
def test_estimator_param_validation(estimator):
    check_param_validation(type(estimator).__name__, estimator)


# Checks that scikit-learn runs in its own sklearn/tests/test_common.py rather
# than through parametrize_with_checks, selected as scikit-learn selects them:
# every estimator gets the general ones, estimators with a method get the checks
# of that method. None is expected to fail.
GENERAL_CHECKS = [
    check_dataframe_column_names_consistency,
    check_n_features_in_after_fitting,
]
METHOD_CHECKS = {
    "partial_fit": [check_estimators_partial_fit_n_features],
    "get_feature_names_out": [check_get_feature_names_out_error],
    "transform": [
        check_transformer_get_feature_names_out,
        check_transformer_get_feature_names_out_pandas,
        check_set_output_transform,
        check_set_output_transform_pandas,
        check_global_output_transform_pandas,
        check_set_output_transform_polars,
        check_global_set_output_transform_polars,
    ],
}


def _extra_checks():
    for estimator in ESTIMATORS + DENSITY_ESTIMATORS:
        checks = list(GENERAL_CHECKS)
        for method, method_checks in METHOD_CHECKS.items():
            if hasattr(estimator, method):
                checks += method_checks
        for check in checks:
            yield pytest.param(estimator, check, id=f"{estimator!r}-{check.__name__}")


EXTRA_CHECKS = list(_extra_checks())


@pytest.mark.parametrize("estimator, check", EXTRA_CHECKS)
def test_estimator_extra_checks(estimator, check):
    name = type(estimator).__name__
    if check is not check_dataframe_column_names_consistency:
        check(name, clone(estimator))
        return
    # As in scikit-learn: data fitted with names never warns it had none.
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        check(name, clone(estimator))
    for warning in record:
        assert "was fitted without feature names" not in str(warning.message)


def test_extra_checks_cover_both_estimators():
    covered = {
        (type(e).__name__, c.__name__) for e, c in (p.values for p in EXTRA_CHECKS)
    }
    for name in ("SelfOrganizingMap", "SOMGenerativeModel"):
        assert (name, "check_dataframe_column_names_consistency") in covered
    assert ("SelfOrganizingMap", "check_get_feature_names_out_error") in covered
    assert ("SelfOrganizingMap", "check_set_output_transform_polars") in covered


def test_som_get_feature_names_out_not_fitted():
    with pytest.raises(NotFittedError):
        SelfOrganizingMap().get_feature_names_out()


def test_som_feature_names_out_prefix():
    som = SelfOrganizingMap(2, 2).fit(np.arange(12.0).reshape(6, 2))
    assert list(som.get_feature_names_out()) == [
        "selforganizingmap0",
        "selforganizingmap1",
    ]

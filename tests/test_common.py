"""scikit-learn's estimator contract, with no expected failures."""

import numpy as np
import pytest
from sklearn.neighbors import KernelDensity
from sklearn.utils.estimator_checks import (
    check_param_validation,
    check_set_output_transform,
    check_transformer_get_feature_names_out,
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


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_estimator_set_output_and_feature_names(estimator):
    name = type(estimator).__name__
    check_set_output_transform(name, estimator)
    check_transformer_get_feature_names_out(name, estimator)


def test_som_feature_names_out_prefix():
    som = SelfOrganizingMap(2, 2).fit(np.arange(12.0).reshape(6, 2))
    assert list(som.get_feature_names_out()) == [
        "selforganizingmap0",
        "selforganizingmap1",
    ]

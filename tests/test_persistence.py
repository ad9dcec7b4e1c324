"""Secure persistence with skops.io: bit-identical models after a round trip."""

import numpy as np
import pytest
import skops.io as sio
from sklearn.datasets import load_iris
from sklearn.neighbors import KernelDensity

from somgen import SelfOrganizingMap, SOMGenerativeModel


@pytest.fixture(scope="module")
def X():
    return load_iris(return_X_y=True)[0]


def _round_trip(estimator, tmp_path):
    """Dump to a file, list the untrusted types, load trusting exactly those."""
    path = tmp_path / "model.skops"
    sio.dump(estimator, path)
    untrusted = sio.get_untrusted_types(file=path)
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.load(path)
    loaded = sio.load(path, trusted=untrusted)
    assert type(loaded) is type(estimator)
    return loaded, untrusted


@pytest.mark.parametrize(
    "som",
    [
        SelfOrganizingMap(4, 5, random_state=0),
        SelfOrganizingMap(4, 3, topology="hexagonal", periodic=True, random_state=0),
        SelfOrganizingMap(3, 3, algorithm="online", batch_size=8, random_state=0),
    ],
    ids=["rectangular", "hexagonal-periodic", "online"],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_som_skops_round_trip_bit_identical(som, dtype, X, tmp_path):
    X = X.astype(dtype)
    som.fit(X)
    loaded, untrusted = _round_trip(som, tmp_path)
    assert untrusted == ["somgen._som.SelfOrganizingMap"]
    np.testing.assert_array_equal(loaded.codebook_, som.codebook_)
    assert loaded.codebook_.dtype == som.codebook_.dtype
    for method in ("transform", "predict"):
        expected = getattr(som, method)(X)
        result = getattr(loaded, method)(X)
        assert result.dtype == expected.dtype
        np.testing.assert_array_equal(result, expected)
    assert loaded.score(X) == som.score(X)
    grid = np.array([[0.25, 0.5], [1.5, 1.0]])
    np.testing.assert_array_equal(
        loaded.inverse_transform(grid), som.inverse_transform(grid)
    )


def test_som_skops_round_trip_continues_partial_fit(X, tmp_path):
    # The generator kept across partial_fit calls survives the round trip.
    som = SelfOrganizingMap(3, 4, algorithm="online", random_state=0)
    som.partial_fit(X[:75])
    loaded, _ = _round_trip(som, tmp_path)
    som.partial_fit(X[75:])
    loaded.partial_fit(X[75:])
    np.testing.assert_array_equal(loaded.codebook_, som.codebook_)


@pytest.mark.parametrize(
    "model",
    [
        SOMGenerativeModel(SelfOrganizingMap(4, 4, random_state=0), random_state=0),
        SOMGenerativeModel(
            SelfOrganizingMap(3, 3, topology="hexagonal", random_state=0),
            covariance_type="full",
            random_state=0,
        ),
        SOMGenerativeModel(
            SelfOrganizingMap(3, 4, random_state=0),
            covariance_type="spherical",
            latent_density=KernelDensity(bandwidth=0.5),
            random_state=0,
        ),
    ],
    ids=["diag", "full-hexagonal", "spherical-latent-kde"],
)
def test_generative_skops_round_trip_bit_identical(model, X, tmp_path):
    model.fit(X)
    loaded, untrusted = _round_trip(model, tmp_path)
    ours = {"somgen._generative.SOMGenerativeModel", "somgen._som.SelfOrganizingMap"}
    if model.latent_density is None:
        # Only somgen's own estimators need trusting: skops trusts the arrays,
        # scalars and random generators that make up the rest.
        assert set(untrusted) == ours
    else:
        # A KernelDensity adds its tree (a scikit-learn type skops does not
        # trust by default).
        assert ours <= set(untrusted)
    for method in ("score_samples", "predict", "predict_proba"):
        np.testing.assert_array_equal(
            getattr(loaded, method)(X), getattr(model, method)(X)
        )
    assert loaded.score(X) == model.score(X)
    np.testing.assert_array_equal(loaded.som_.transform(X), model.som_.transform(X))
    X_missing = X[:10].copy()
    X_missing[::2, 1] = np.nan
    np.testing.assert_array_equal(loaded.impute(X_missing), model.impute(X_missing))
    samples, units = loaded.sample(20, random_state=3)
    expected_samples, expected_units = model.sample(20, random_state=3)
    np.testing.assert_array_equal(samples, expected_samples)
    np.testing.assert_array_equal(units, expected_units)

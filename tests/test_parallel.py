"""Thread pool, BLAS thread limits and the default number of threads."""

import threading

import numpy as np
import pytest
from joblib import cpu_count, parallel_config
from numpy.testing import assert_array_equal
from threadpoolctl import threadpool_info, threadpool_limits

import somgen._parallel as parallel_mod
from somgen import SelfOrganizingMap
from somgen._parallel import _effective_n_threads, _single_threaded_blas


def _blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads():
    """BLAS on two threads for the test (whatever the machine's default), so
    that pinning it to one and restoring it are both observable."""
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() and min(_blas_threads()) == 2
        yield


def test_effective_n_threads_default_uses_cores_capped_by_blas_limit():
    expected = min(cpu_count(), max(_blas_threads() or [cpu_count()]))
    assert _effective_n_threads(None) == expected
    with threadpool_limits(limits=1, user_api="blas"):
        assert _effective_n_threads(None) == 1
    with parallel_config(n_jobs=3):
        assert _effective_n_threads(None) == 3
    assert _effective_n_threads(1) == 1
    assert _effective_n_threads(5) == 5
    assert _effective_n_threads(-1) == cpu_count()


def test_effective_n_threads_ignores_our_own_pin():
    # Inside a somgen kernel BLAS is pinned to 1, but a nested default must
    # still see the limit the user had set.
    before = _effective_n_threads(None)
    with _single_threaded_blas():
        assert _effective_n_threads(None) == before


def test_single_threaded_blas_nests_and_restores(two_blas_threads):
    before = _blas_threads()
    with _single_threaded_blas():
        assert max(_blas_threads()) == 1
        with _single_threaded_blas():
            assert max(_blas_threads()) == 1
        assert max(_blas_threads()) == 1
    assert _blas_threads() == before


def test_overlapping_pins_from_threads_restore_the_original_limits(two_blas_threads):
    # Contexts that open and close in interleaved order (thread A enters, B
    # enters, A leaves, B leaves) must restore the limits found by the first.
    before = _blas_threads()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with _single_threaded_blas():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second():
        a_in.wait(5)
        with _single_threaded_blas():
            b_in.set()
            a_out.wait(5)
            seen["inside"] = max(_blas_threads())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["inside"] == 1  # A leaving did not unpin B's kernels
    assert _blas_threads() == before


def test_concurrent_predict_leaves_blas_threads_unchanged(two_blas_threads):
    # 8 threads predicting on one model with n_jobs=2 used to leave the whole
    # process pinned at one BLAS thread (overlapping threadpool_limits).
    rng = np.random.RandomState(0)
    X = rng.normal(size=(3000, 8))
    som = SelfOrganizingMap(8, 8, n_epochs=2, n_jobs=2, random_state=0).fit(X)
    expected = som.predict(X)
    before = _blas_threads()
    results = [None] * 8
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait(5)
        for _ in range(5):
            results[i] = som.predict(X)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _blas_threads() == before
    for r in results:
        assert_array_equal(r, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_and_predict_leave_blas_threads_unchanged(dtype):
    X = np.random.RandomState(1).normal(size=(500, 4)).astype(dtype)
    before = _blas_threads()
    for n_jobs in (None, 1, 2):
        som = SelfOrganizingMap(5, 5, n_epochs=2, n_jobs=n_jobs).fit(X)
        som.predict(X)
        som.partial_fit(X)
        assert _blas_threads() == before


@pytest.mark.parametrize("algorithm", ["batch", "online"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_is_bit_identical_for_every_thread_count(monkeypatch, dtype, algorithm):
    # Several chunks so that threads really split the work.
    monkeypatch.setattr(parallel_mod, "_CHUNK_ELEMENTS", 64 * 25)
    monkeypatch.setattr(parallel_mod, "_MIN_CHUNK", 16)
    rng = np.random.RandomState(2)
    X = (rng.normal(size=(4000, 6)) * [1, 2, 3, 1, 1, 5] + 3.0).astype(dtype)
    params = dict(n_epochs=3, algorithm=algorithm, batch_size=64, random_state=0)
    reference = SelfOrganizingMap(6, 5, n_jobs=1, **params).fit(X)
    for n_jobs in (None, 2, -1, 3):
        som = SelfOrganizingMap(6, 5, n_jobs=n_jobs, **params).fit(X)
        assert_array_equal(som.codebook_, reference.codebook_)
        assert som.quantization_error_ == reference.quantization_error_
        assert som.topographic_error_ == reference.topographic_error_
        assert_array_equal(som.predict(X), reference.predict(X))
    # A user-set BLAS limit changes the default thread count, not the result.
    with threadpool_limits(limits=1, user_api="blas"):
        som = SelfOrganizingMap(6, 5, **params).fit(X)
    assert_array_equal(som.codebook_, reference.codebook_)


@pytest.mark.parametrize(
    "params", [dict(n_jobs=1), dict(n_jobs=2), dict(algorithm="online", batch_size=500)]
)
def test_calls_keep_no_scratch_buffers_afterwards(params):
    # Chunk kernels reuse per-thread buffers within one call; none may outlive it.
    X = np.random.RandomState(3).normal(size=(3000, 8))
    som = SelfOrganizingMap(5, 5, n_epochs=2, random_state=0, **params).fit(X)
    som.predict(X)
    som.score(X)
    assert getattr(parallel_mod._SCRATCH, "buffers", None) is None


@pytest.mark.parametrize("n_jobs", [None, 1, 2])
def test_chunk_kernels_run_with_single_threaded_blas(
    monkeypatch, n_jobs, two_blas_threads
):
    # The default n_jobs=None ran multi-threaded BLAS inside the small block
    # products, which collapses under load; every n_jobs must pin it.
    import somgen._training as training_mod

    seen = []
    original = training_mod._chunk_statistics

    def spy(*args, **kwargs):
        seen.append(max(_blas_threads()))
        return original(*args, **kwargs)

    monkeypatch.setattr(training_mod, "_chunk_statistics", spy)
    X = np.random.RandomState(4).normal(size=(2000, 4))
    SelfOrganizingMap(4, 4, n_epochs=2, n_jobs=n_jobs, random_state=0).fit(X)
    assert seen and set(seen) == {1}

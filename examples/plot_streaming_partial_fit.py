"""
=================================================
Batch, online and partial_fit on a stream of data
=================================================

:meth:`~somgen.SelfOrganizingMap.fit` trains on the whole data set, with the
batch rule (``algorithm="batch"``, one weighted mean per epoch) or Kohonen's
online rule (``algorithm="online"``, shuffled mini-batches).
:meth:`~somgen.SelfOrganizingMap.partial_fit` trains on a stream, one chunk per
call, annealing the neighbourhood over the first ``n_epochs`` calls. Here the
stream is the digits, arriving in chunks of 100 samples; we follow the
quantization error of each new chunk *before* the map sees it.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap

X, _ = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
rng = np.random.default_rng(0)
X = X[rng.permutation(len(X))]
chunks = np.array_split(X, len(X) // 100)
params = dict(n_rows=8, n_cols=8, random_state=0)

# %%
# Streaming with partial_fit
# --------------------------
# ``score`` is minus the mean quantization error, so the held-out error of the
# next chunk is ``-som.score(chunk)``.
streams = {}
for algorithm in ("batch", "online"):
    som = SelfOrganizingMap(
        algorithm=algorithm, batch_size=10, n_epochs=len(chunks), **params
    )
    som.partial_fit(chunks[0])
    errors = []
    for chunk in chunks[1:]:
        errors.append(-som.score(chunk))
        som.partial_fit(chunk)
    streams[algorithm] = errors

# %%
# Reference: fit on all the data at once
# --------------------------------------
# Their error on the whole data set (which they trained on) is a lower
# reference for the stream.
full = {
    algorithm: SelfOrganizingMap(algorithm=algorithm, batch_size=10, **params).fit(X)
    for algorithm in ("batch", "online")
}

fig, ax = plt.subplots(figsize=(7, 4))
for (algorithm, errors), color in zip(streams.items(), ("C0", "C1"), strict=True):
    ax.plot(
        np.arange(1, len(chunks)),
        errors,
        color=color,
        label=f"partial_fit, {algorithm}",
    )
    ax.axhline(
        full[algorithm].quantization_error_,
        color=color,
        linestyle="--",
        label=f"fit, {algorithm}",
    )
ax.set_xlabel("chunk")
ax.set_ylabel("quantization error of the next chunk")
ax.legend()
fig.tight_layout()
plt.show()

"""
=================================
Sampling from a region of the map
=================================

``SOMGenerativeModel.sample(n, units=...)`` draws only from the mixture
components of the chosen units, given as indices or as a boolean mask over the
units, with probabilities proportional to their weights. Because neighbouring
units model similar data, a region of the map is a region of data space: here
we pick the units where the digit 0 dominates and generate zeros.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen.plotting import HitMapDisplay

X, y = load_digits(return_X_y=True)
X = X / 16.0
model = SOMGenerativeModel(SelfOrganizingMap(8, 8, random_state=0), random_state=0).fit(
    X
)
som = model.som_

# %%
# Choose a region
# ---------------
# A unit belongs to the region when most of the training samples it wins are
# zeros. ``HitMapDisplay`` shows the majority class of every unit.
units = som.predict(X)
n_units = som.n_rows_ * som.n_cols_
hits = np.bincount(units, minlength=n_units)
zeros = np.bincount(units, weights=(y == 0), minlength=n_units)
mask = (hits > 0) & (zeros > hits / 2)
print(f"{mask.sum()} units out of {n_units} are zeros")

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
HitMapDisplay.from_estimator(model, X, y, ax=axes[0])
axes[0].set_title("Majority digit per unit")
region = HitMapDisplay(
    mask.astype(float), unit_coords=som.unit_coords_, topology=som.topology
).plot(ax=axes[1], cmap="Greys", colorbar=False)
axes[1].set_title("Region: units where 0 dominates")
fig.tight_layout()

# %%
# Sample from the region
# ----------------------
# With a boolean mask (or equivalently the indices ``np.flatnonzero(mask)``)
# every sample comes from a unit of the region.
samples, drawn_units = model.sample(12, units=mask, random_state=0)
assert mask[drawn_units].all()

fig, axes = plt.subplots(1, 12, figsize=(12, 1.4))
for ax, image in zip(axes, np.clip(samples, 0, 1), strict=True):
    ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    ax.set_axis_off()
fig.suptitle("Samples from the region")
plt.show()

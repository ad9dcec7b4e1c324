"""
=========================================
Generating digits with SOMGenerativeModel
=========================================

:class:`~somgen.SOMGenerativeModel` turns a fitted map into a Gaussian mixture
whose components are the map's units: means pinned to the prototypes,
covariances shrunk towards the data's, weights from the hits, refined by EM.
It is an exact density and a sampler. Here it learns the 8x8 digits, and new
digits drawn from it are shown beside real ones.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from somgen import SelfOrganizingMap, SOMGenerativeModel

X, _ = load_digits(return_X_y=True)
X_train, X_test = train_test_split(X / 16.0, test_size=0.25, random_state=0)

model = SOMGenerativeModel(
    SelfOrganizingMap(8, 8, random_state=0),
    covariance_type="diag",
    random_state=0,
).fit(X_train)
print(f"held-out log-likelihood: {model.score(X_test):.1f} nats per sample")

# %%
# Samples beside real digits
# --------------------------
# ``sample`` returns the samples and the unit each one was drawn from. Pixel
# intensities live in [0, 1], so the samples are clipped to that range for
# display.
samples, units = model.sample(10, random_state=0)
samples = np.clip(samples, 0.0, 1.0)

fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
for ax, image in zip(axes[0], X_test[:10], strict=True):
    ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
for ax, image, unit in zip(axes[1], samples, units, strict=True):
    ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"unit {unit}", fontsize=7)
for ax in axes.ravel():
    ax.set_axis_off()
axes[0, 0].text(-4, 4, "real", ha="right", va="center")
axes[1, 0].text(-4, 4, "sampled", ha="right", va="center")
fig.tight_layout()

# %%
# The prototypes themselves
# -------------------------
# The means of the mixture are the prototypes of the map, laid out on its grid:
# neighbouring units hold similar digits.
som = model.som_
fig, axes = plt.subplots(som.n_rows_, som.n_cols_, figsize=(5, 5))
for ax, prototype in zip(axes.ravel(), som.codebook_, strict=True):
    ax.imshow(prototype.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    ax.set_axis_off()
fig.suptitle("Prototypes on the 8x8 grid")
plt.show()

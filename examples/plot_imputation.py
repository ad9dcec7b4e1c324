"""
=================================================
Imputing missing values with the generative model
=================================================

``SOMGenerativeModel.impute`` replaces every missing value (NaN) by its
conditional mean given the observed values of the same sample, under the
fitted mixture. Unlike a column mean (:class:`~sklearn.impute.SimpleImputer`),
it uses what is known about the sample: a digit with half its pixels hidden is
completed into a plausible digit.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split

from somgen import SelfOrganizingMap, SOMGenerativeModel

X, _ = load_digits(return_X_y=True)
X_train, X_test = train_test_split(X / 16.0, test_size=0.2, random_state=0)
model = SOMGenerativeModel(SelfOrganizingMap(8, 8, random_state=0), random_state=0).fit(
    X_train
)
mean_imputer = SimpleImputer(strategy="mean").fit(X_train)

# %%
# Hide the lower half of every test digit
# ---------------------------------------
X_missing = X_test.copy()
X_missing[:, 32:] = np.nan
X_som = model.impute(X_missing)
X_mean = mean_imputer.transform(X_missing)

for name, X_imputed in [("SimpleImputer", X_mean), ("SOMGenerativeModel", X_som)]:
    rmse = np.sqrt(np.mean((X_imputed[:, 32:] - X_test[:, 32:]) ** 2))
    print(f"{name:>18}: RMSE on the hidden pixels {rmse:.3f}")

# %%
# Completed digits
# ----------------
rows = {
    "true": X_test,
    "observed": np.nan_to_num(X_missing, nan=0.5),
    "column mean": X_mean,
    "SOM model": X_som,
}
fig, axes = plt.subplots(4, 8, figsize=(8, 4.4))
for row_axes, (name, images) in zip(axes, rows.items(), strict=True):
    for ax, image in zip(row_axes, images[:8], strict=True):
        ax.imshow(np.clip(image, 0, 1).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    row_axes[0].set_ylabel(name, fontsize=8)
fig.tight_layout()
plt.show()

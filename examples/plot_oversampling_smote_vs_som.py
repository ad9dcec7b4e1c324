"""
=======================================
Over-sampling a minority: SMOTE vs SOM
=======================================

``SOMOverSampler`` draws new minority rows from a class-conditional density on
one self-organizing map, anchored at the minority rows (``locality``) and kept
where the class is probable (``min_posterior``). SMOTE interpolates between a
minority row and one of its minority neighbours. On two moons with one
minority row in eight kept, SMOTE's rows lie on segments; the SOM's rows
spread around the minority rows with the spread of their units, and none
copies a training row.

This example needs imbalanced-learn (``pip install somgen[imbalanced]``).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from imblearn.over_sampling import SMOTE
from sklearn.datasets import make_moons

from somgen import SOMOverSampler

X, y = make_moons(n_samples=400, noise=0.15, random_state=0)
keep = (y == 0) | (np.arange(400) % 8 == 0)
X, y = X[keep], y[keep]
X_smote, _ = SMOTE(random_state=0).fit_resample(X, y)
sampler = SOMOverSampler(random_state=0)
X_som, _ = sampler.fit_resample(X, y)
print(f"minority rows: {np.sum(y == 1)}, new rows: {len(X_som) - len(X)}")
print(f"SOMOverSampler distance-to-closest-record ratio: {sampler.dcr_ratio_:.2f}")

# %%
# New minority rows over the training data
# ----------------------------------------
fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True, sharey=True)
for ax, X_res, title in zip(
    axes, (X_smote, X_som), ("SMOTE", "SOMOverSampler"), strict=True
):
    ax.scatter(*X[y == 0].T, s=6, c="0.75", label="majority")
    ax.scatter(*X_res[len(X) :].T, s=8, c="tab:orange", label="new minority rows")
    ax.scatter(*X[y == 1].T, s=18, c="tab:blue", label="minority rows")
    ax.set_title(title)
axes[0].legend(loc="lower left", fontsize=8)
fig.tight_layout()
plt.show()

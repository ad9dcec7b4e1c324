"""
=======================================
Choosing the map size with GridSearchCV
=======================================

``SOMGenerativeModel.score`` is the mean log-likelihood of held-out data, so
:class:`~sklearn.model_selection.GridSearchCV` can tune the generative model
without labels. The map is a nested estimator: its parameters are reached as
``som__n_rows`` and ``som__n_cols``. Small maps underfit, big maps spread the
data over too many components; cross-validation finds the balance.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_wine
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap, SOMGenerativeModel

X, _ = load_wine(return_X_y=True)
X = StandardScaler().fit_transform(X)

sizes = [1, 2, 3, 4, 5, 6]
search = GridSearchCV(
    SOMGenerativeModel(
        SelfOrganizingMap(n_epochs=5, random_state=0),
        covariance_type="diag",
        random_state=0,
    ),
    param_grid=[{"som__n_rows": [k], "som__n_cols": [k]} for k in sizes],
    cv=5,
)
search.fit(X)
print("best map:", search.best_params_)

# %%
# Held-out log-likelihood against the number of units
# ---------------------------------------------------
results = search.cv_results_
mean, std = results["mean_test_score"], results["std_test_score"]
n_units = np.array(sizes) ** 2
fig, ax = plt.subplots(figsize=(6, 4))
ax.errorbar(n_units, mean, yerr=std, marker="o", capsize=3)
ax.set_xlabel("number of units (k x k map)")
ax.set_ylabel("held-out log-likelihood per sample")
ax.set_title("5-fold cross-validation on the wine data")
fig.tight_layout()
plt.show()

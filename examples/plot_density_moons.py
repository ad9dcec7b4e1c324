"""
=================================================================
Density and samples on two moons, against GaussianMixture and KDE
=================================================================

Three density estimators fitted to the same 2-D data:
:class:`~somgen.SOMGenerativeModel` on a 6x6 map,
:class:`~sklearn.mixture.GaussianMixture` with as many components, and
:class:`~sklearn.neighbors.KernelDensity`. The contours show their
log-densities, the points new samples drawn from each; the titles give the mean
log-likelihood of held-out data (higher is better).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity

from somgen import SelfOrganizingMap, SOMGenerativeModel

X, _ = make_moons(n_samples=600, noise=0.08, random_state=0)
X_test, _ = make_moons(n_samples=600, noise=0.08, random_state=1)

models = {
    "SOMGenerativeModel (6x6)": SOMGenerativeModel(
        SelfOrganizingMap(6, 6, random_state=0),
        covariance_type="full",
        random_state=0,
    ),
    "GaussianMixture (36)": GaussianMixture(36, random_state=0),
    "KernelDensity": KernelDensity(bandwidth=0.1),
}

xx, yy = np.meshgrid(np.linspace(-1.5, 2.5, 150), np.linspace(-1.0, 1.5, 100))
grid = np.column_stack([xx.ravel(), yy.ravel()])

fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
for ax, (name, model) in zip(axes, models.items(), strict=True):
    model.fit(X)
    log_density = model.score_samples(grid).reshape(xx.shape)
    ax.contourf(xx, yy, np.maximum(log_density, -8), levels=12, cmap="Blues")
    samples = model.sample(200)
    # GaussianMixture and SOMGenerativeModel return (X, labels), KDE an array.
    samples = samples[0] if isinstance(samples, tuple) else samples
    ax.scatter(samples[:, 0], samples[:, 1], s=4, color="C3")
    # KernelDensity.score is the total log-likelihood, the others the mean.
    score = model.score(X_test)
    if isinstance(model, KernelDensity):
        score /= len(X_test)
    ax.set_title(f"{name}\nheld-out log-likelihood {score:.2f}")
fig.tight_layout()
plt.show()

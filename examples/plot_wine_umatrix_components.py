"""
==============================================
U-matrix and component planes of the wine data
==============================================

The U-matrix (:class:`~somgen.plotting.UMatrixDisplay`) shows, for every unit,
the mean distance between its prototype and those of its neighbours: ridges of
large distances separate clusters. Component planes
(:class:`~somgen.plotting.ComponentPlanesDisplay`) show the value of one
feature across the map, so features that vary together draw similar planes.
"""

# %%
import matplotlib.pyplot as plt
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap
from somgen.plotting import ComponentPlanesDisplay, HitMapDisplay, UMatrixDisplay

data = load_wine(as_frame=True)
X = StandardScaler().set_output(transform="pandas").fit_transform(data.data)
y = data.target
som = SelfOrganizingMap(10, 12, topology="hexagonal", random_state=0).fit(X)

# %%
# U-matrix beside the cultivars
# -----------------------------
# The three cultivars occupy the regions that the ridges of the U-matrix
# separate.
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
UMatrixDisplay.from_estimator(som, ax=axes[0], cmap="bone_r")
axes[0].set_title("U-matrix")
HitMapDisplay.from_estimator(
    som, X, y, ax=axes[1], display_labels=list(data.target_names)
)
axes[1].set_title("Majority cultivar")
fig.tight_layout()

# %%
# Component planes
# ----------------
# The map was fitted on a DataFrame, so the planes are titled with the column
# names. Flavanoids and total phenols, for instance, draw nearly the same plane.
display = ComponentPlanesDisplay.from_estimator(
    som,
    features=["alcohol", "flavanoids", "total_phenols", "color_intensity", "hue"],
    n_cols=5,
)
display.figure_.set_size_inches(14, 3)
plt.show()

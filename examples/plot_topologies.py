"""
========================================
Hexagonal, rectangular and toroidal maps
========================================

The same data fitted with three grids. A rectangular grid gives every unit four
direct neighbours (eight counting diagonals), a hexagonal grid six at the same
distance; a periodic (toroidal) grid wraps both axes, so border units have as
many neighbours as interior ones and no region of the data is pushed to an edge.
The U-matrix of each map is drawn with the cells of its lattice.
"""

# %%
import matplotlib.pyplot as plt
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap
from somgen.plotting import UMatrixDisplay

X, _ = load_iris(return_X_y=True)
X = StandardScaler().fit_transform(X)

maps = {
    "rectangular": SelfOrganizingMap(8, 10, random_state=0),
    "hexagonal": SelfOrganizingMap(8, 10, topology="hexagonal", random_state=0),
    "hexagonal, toroidal": SelfOrganizingMap(
        8, 10, topology="hexagonal", periodic=True, random_state=0
    ),
}

fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for ax, (name, som) in zip(axes, maps.items(), strict=True):
    som.fit(X)
    UMatrixDisplay.from_estimator(som, ax=ax, cmap="bone_r")
    ax.set_title(
        f"{name}\nQE={som.quantization_error_:.2f}  TE={som.topographic_error_:.2f}"
    )
fig.tight_layout()
plt.show()

# %%
# The quantization error (QE) measures how close the prototypes are to the
# data, the topographic error (TE) how often a sample's two best units are not
# neighbours on the grid, i.e. how much the map folds.

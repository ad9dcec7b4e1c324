"""
========================================
Hit map of the digits, coloured by class
========================================

A :class:`~somgen.SelfOrganizingMap` is fitted to scikit-learn's handwritten
digits (without their labels). :class:`~somgen.plotting.HitMapDisplay` then
shows, for every unit, the class that wins most of its samples (colour) and the
share of that class among them (opacity): the map has sorted the ten digits
into contiguous regions without ever seeing a label.
"""

# %%
# Fit a hexagonal map on standardised pixels
# ------------------------------------------
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap
from somgen.plotting import HitMapDisplay

X, y = load_digits(return_X_y=True)
scaler = StandardScaler().fit(X)
X_scaled = scaler.transform(X)
som = SelfOrganizingMap(12, 16, topology="hexagonal", n_epochs=10, random_state=0)
som.fit(X_scaled)
print(f"quantization error: {som.quantization_error_:.2f}")
print(f"topographic error:  {som.topographic_error_:.3f}")

# %%
# Hits and majority classes
# -------------------------
# Passing ``y`` colours each unit by its majority class; units that no sample
# picked stay empty.
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
HitMapDisplay.from_estimator(som, X_scaled, ax=axes[0])
axes[0].set_title("Hits per unit")
HitMapDisplay.from_estimator(som, X_scaled, y, ax=axes[1])
axes[1].set_title("Majority digit per unit")
fig.tight_layout()
plt.show()

# %%
# The same map inside a pipeline
# ------------------------------
# The map is a transformer, so it composes with scikit-learn's tools:
# ``transform`` returns the grid position of each sample's best-matching unit.
pipe = make_pipeline(StandardScaler(), som)
coords = pipe.fit_transform(X)
print(coords[:3])

"""Self-organizing maps and SOM-based generative models for scikit-learn."""

from somgen._compose import TransformedDensity, sample_pipeline
from somgen._generative import SOMGenerativeModel
from somgen._som import SelfOrganizingMap

__version__ = "0.1.0"

__all__ = [
    "SOMGenerativeModel",
    "SelfOrganizingMap",
    "TransformedDensity",
    "__version__",
    "sample_pipeline",
]

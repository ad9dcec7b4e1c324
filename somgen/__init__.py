"""Self-organizing maps and SOM-based generative models for scikit-learn."""

from somgen._compose import TransformedDensity, sample_pipeline
from somgen._generative import SOMGenerativeModel
from somgen._labelled import SOMClassConditionalModel, SOMOverSampler
from somgen._latent import sample_latent
from somgen._som import SelfOrganizingMap

__version__ = "0.1.0"

__all__ = [
    "SOMClassConditionalModel",
    "SOMGenerativeModel",
    "SOMOverSampler",
    "SelfOrganizingMap",
    "TransformedDensity",
    "__version__",
    "sample_latent",
    "sample_pipeline",
]

"""The model families: each family's spec (`<family>_spec.py`, torch-free, composed by the config)
beside its builder (`<family>.py`), and `registry.create_model` to build any of them.

Importing a spec module registers its family (models.families). The imports below are the list of
families, in the order params.yaml's errors name them, so they are kept out of import sorting."""

# isort: off
from droplab.models import mlp_spec  # noqa: F401
from droplab.models import cnn_spec  # noqa: F401
from droplab.models import lenet_spec  # noqa: F401
from droplab.models import resnet_spec  # noqa: F401
# isort: on

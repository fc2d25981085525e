"""The model families: each family's spec (`<family>_spec.py`, torch-free, composed by the config)
beside its builder (`<family>.py`), and `registry.create_model` to build any of them."""

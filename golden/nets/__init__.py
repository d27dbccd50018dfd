"""Demo networks with integer golden models (see :mod:`golden.nets.digits`)."""

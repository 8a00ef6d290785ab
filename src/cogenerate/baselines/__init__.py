"""The classic optimisation baselines: gradient descent on z (and Yeh et al.'s inpainting)."""

"""Annealed samplers: schedules, AIS (the paper's Algorithm 1) and adaptive tempered SMC."""

import pytest

from cogenerate.anneal.schedules import SCHEDULES, make_schedule


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("steps", [1, 2, 10, 1000])
def test_schedules_run_from_zero_to_one_monotonically(name, steps):
    beta = make_schedule(name, steps)
    assert beta.shape == (steps + 1,)
    assert beta[0].item() == 0.0 and beta[-1].item() == 1.0
    assert (beta.diff() >= 0).all()


def test_sigmoid_is_normalised_not_raw():
    beta = make_schedule("sigmoid", 100)
    # The raw σ(±4) would end at 0.982 and start at 0.018.
    assert beta[1] < 0.002 and beta[-2] > 0.998


def test_unknown_schedule_and_zero_steps_raise():
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("cosine", 10)
    with pytest.raises(ValueError, match="at least 1 step"):
        make_schedule("linear", 0)
